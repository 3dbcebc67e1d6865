// Package events writes Kubernetes Events (events.k8s.io) at a bounded pace for both
// programs: a burst of thousands of Services (a backlog for the controller, a take-over for
// a speaker) must not turn into thousands of goroutines and requests at once.
package events

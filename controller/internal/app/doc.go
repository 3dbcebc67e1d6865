// Package app wires the controller: manager, caches, reconcilers, probes, leader
// election. main parses flags into Options and calls Run; tests call Run too.
package app

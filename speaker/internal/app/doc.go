// Package app wires the speaker: the informer caches, the membership cluster, the planner
// and the layer-2 announcer, and the SpeakerStatus it writes. speaker/main.go only parses
// flags.
package app

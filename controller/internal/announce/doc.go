// Package announce keeps each LoadBalancer Service's vipcast.io/Announced condition equal to
// what the speakers report in their SpeakerStatus: who announces each address and how, or,
// when nobody does, why (the planner's verdict over the same objects the speakers read). The
// reports are read once per change into an Index by address, and a change reconciles only the
// Services holding the addresses it touched.
package announce

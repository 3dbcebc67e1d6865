package integration

import "testing"

func TestSmoke(t *testing.T) {
	startController(t, appOptions())
}

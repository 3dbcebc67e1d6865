package integration

import "github.com/vipcast/vipcast/controller/internal/app"

func appOptions() app.Options { return app.Options{} }

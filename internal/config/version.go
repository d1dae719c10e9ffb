package config

import "runtime/debug"

// devVersion is Version when no -ldflags set it.
const devVersion = "0.1.0-dev"

// init takes the module version recorded by `go install module@version`
// when the build did not set Version with -ldflags (make build does).
func init() {
	if Version != devVersion {
		return
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		Version = bi.Main.Version
	}
}

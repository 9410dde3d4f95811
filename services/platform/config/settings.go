package config

import "github.com/caarlos0/env/v11"

// DefaultsWith is Defaults with vars taken as the environment: the
// configuration a program gets when exactly vars are set. A program that
// runs a service in-process (devstack) passes settings on by their variable
// names; a variable the configuration does not read is ignored.
func DefaultsWith(cfg any, vars map[string]string) error {
	if vars == nil {
		vars = map[string]string{}
	}
	if err := env.ParseWithOptions(cfg, env.Options{Environment: vars}); err != nil {
		return explain(err, cfg)
	}
	return nil
}

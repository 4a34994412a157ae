package gateway

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/edgegate/edgegate/configsign"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// publicKeys parses public_keys and reads public_key_files (relative to
// dir); problems are located at the entry.
func (r RemoteConfig) publicKeys(dir string) ([]configsign.PublicKey, error) {
	var errs yamlconf.List
	var keys []configsign.PublicKey
	for i, s := range r.PublicKeys {
		k, err := configsign.ParsePublicKey(s)
		if err != nil {
			errs.Add(yamlconf.Key("public_keys").Index(i), "%v", err)
			continue
		}
		keys = append(keys, k)
	}
	for i, p := range r.PublicKeyFiles {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		k, err := configsign.ReadPublicKeyFile(p)
		if err != nil {
			errs.Add(yamlconf.Key("public_key_files").Index(i), "%v", err)
			continue
		}
		keys = append(keys, k)
	}
	return keys, errs.Err()
}

// signatures is the configVerifier of a gateway: the public keys of the
// configuration in effect decide (so a signed document may rotate them),
// and the version rule is configsign's (Verifier.Check).
type signatures struct {
	g          *Gateway
	warnedOnce sync.Once
}

// Verify implements configVerifier. The local file (start, SIGHUP,
// POST /-/reload) and rollbacks to a kept configuration are trusted:
// unsigned or older is accepted (unsigned with a warning, once, while keys
// are configured), but a signature they carry must verify.
func (s *signatures) Verify(_ Config, u ConfigUpdate) (Verified, error) {
	g := s.g
	trusted := u.Source == SourceFile || u.Source == SourceSIGHUP || u.Source == SourceRollback
	var running configsign.Running
	if prev := g.running.Load(); prev != nil && prev.entry.Signed {
		body, _, _ := configsign.Split(prev.data)
		running = configsign.Running{Version: prev.entry.Version, BodyHash: configsign.BodyHash(body)}
	}
	v := configsign.Verifier{Keys: g.live.Load().keys}
	// A trusted source may also go back to an older signed version.
	c, err := v.Check(u.Data, u.Signature, running, configsign.Policy{Force: u.Force || trusted, Trusted: trusted})
	if err != nil {
		var ve *configsign.VersionError
		if errors.As(err, &ve) {
			return Verified{}, refuse(RefusedStale, fmt.Errorf("%w: refused (a local operator can force it with config push --force on the gateway)", err))
		}
		return Verified{}, refuse(RefusedSignature, err)
	}
	if c.Warning != "" {
		s.warnedOnce.Do(func() { g.log.Warn(c.Warning, "component", "config", "source", u.Source, "origin", u.Origin) })
	}
	return Verified{Signed: c.Signed, Version: c.Version}, nil
}

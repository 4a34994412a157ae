// Package access decides who may connect to edgegate's MQTT broker and what
// each client may publish and subscribe to. It owns:
//
//   - the `auth:` configuration section (Config): users inline and in a
//     users file, allow_anonymous, the client id rule and the topic ACL;
//   - when anonymous clients are allowed, given the broker's listeners
//     (Options): a configuration that listens beyond loopback with no way to
//     authenticate is refused, one that opens anonymous access beyond
//     loopback is warned about (Checker.Warnings);
//   - secret hashes: HashSecret writes argon2id PHC strings, VerifySecret
//     checks argon2id and bcrypt hashes, and a Verifier bounds how many
//     verifications run at once and remembers successful ones so that a
//     reconnect storm costs little CPU;
//   - the topic ACL: rules of topic filter templates (%u the authenticated
//     identity, %c the client id), deny by default when present, '$'
//     topics granted only by a rule that names them.
//
// A Checker is one compiled configuration; a reload compiles a new one and
// the broker swaps it in. A Verifier outlives reloads (its cache is keyed by
// user, stored hash and secret, so a changed hash is a miss).
//
// access is a leaf: it imports internal/yamlconf (its configuration errors)
// and no other edgegate package; it must not import mqtt, gateway or mochi
// (gateway adapts a Checker to mqtt.Access). Its only I/O is reading the
// users file in Compile.
//
// Concurrency: a Checker is immutable once Compile returns and safe for
// concurrent use. A Verifier is safe for concurrent use; Verify blocks
// while its concurrency bound is reached, for at most its wait limit.
// HashSecret and VerifySecret are safe for concurrent use and unbounded.
package access

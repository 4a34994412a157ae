// Package configsign owns edgegate's signed configurations: ed25519 key
// pairs and their one-line key files, the signature line that travels with
// a configuration document (embedded as its last line, a YAML comment, or
// detached: a FILE.sig file or an Edgegate-Signature HTTP header), and the
// check that the gateway's apply path runs on every document from a remote
// source (signed by a configured key, newer than the running version).
//
// Formats:
//
//	edgegate-ed25519-private <base64 of the 32-byte seed>   (NAME.key, mode 0600)
//	edgegate-ed25519-public <base64 of the 32-byte key>     (NAME.pub)
//	# edgegate-signature: v1 version=<int64> key=<keyid> sig=<base64url>
//
// The key id is the first 8 bytes of SHA-256 of the public key, in hex. The
// signed message is "edgegate-config-v1\n" + version + "\n" + body, where
// body is the document's bytes without the signature line; the version is
// thereby signed with the body, so a replayed older document cannot claim
// a newer version.
//
// configsign is a leaf: it imports only the standard library and must not
// import any other edgegate package. Keys, lines and Verifier values are
// immutable after they are made and safe for concurrent use; the functions
// keep no state.
package configsign

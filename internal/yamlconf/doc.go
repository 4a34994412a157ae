// Package yamlconf owns how edgegate reads its configuration: strict YAML
// decoding into structs that already hold their defaults, and the one error
// type every configuration problem is reported with.
//
// A problem is born as an *Error with a structured Path (keys and list
// indexes, never a string to split: a key may contain dots) and a message,
// where it is found: in the decoder (unknown key, wrong type, duplicate key)
// or in a section's Validate/Compile. A Document locates it once against
// the YAML tree, so every problem reads `file:line:col: path: message`, and
// every problem of a file is reported at once.
//
// Decoding is strict: an unknown key is an error (with where it moved, for
// types that implement KeyMover), and a scalar of the wrong type is an error
// at that scalar that does not hide the other problems. A value that starts
// from defaults keeps them for the keys the file leaves out; a list element,
// map value or pointer target allocated by the decoder gets its defaults
// first when its type implements Defaulter, so an explicit 0 stays 0.
//
// ByteSize, the "512MiB" type of every size setting, lives here so that the
// packages with size settings (buffer, uplink, gateway) share one parser;
// ReadFile, so that every file a configuration includes is read with the
// same bounds.
//
// yamlconf imports no other edgegate package; every package that owns a
// configuration section may import it. It holds no state: its functions are
// safe for concurrent use, and a Document is read-only once Decode returns.
package yamlconf

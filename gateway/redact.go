package gateway

import (
	"bytes"
	"strings"

	"go.yaml.in/yaml/v3"
)

// redactedValue replaces every secret of a configuration shown by GET
// /v1/config.
const redactedValue = "<redacted>"

// secretKey reports whether a mapping key holds a secret: a token, a
// password, a hash of one, a private key. Keys naming files (…_file) hold
// paths and stay.
func secretKey(k string) bool {
	switch k {
	case "token", "bearer_token", "password", "password_hash", "hash", "secret", "private_key":
		return true
	}
	return strings.HasSuffix(k, "_token") || strings.HasSuffix(k, "_secret") || strings.HasSuffix(k, "_password")
}

// redactDocument returns a configuration document with the value of every
// secret key, and every HTTP header value (an Authorization header is a
// credential), replaced by <redacted>. Comments and key order stay.
func redactDocument(data []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	redactNode(&root, false)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	enc.Close()
	return b.Bytes(), nil
}

// redactNode redacts under n; all redacts every scalar (the values of a
// headers map).
func redactNode(n *yaml.Node, all bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			redactNode(c, all)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch {
			case all || secretKey(k.Value):
				redactAll(v)
			case k.Value == "headers":
				redactNode(v, true)
			default:
				redactNode(v, false)
			}
		}
	case yaml.ScalarNode:
		if all {
			redactAll(n)
		}
	case yaml.AliasNode:
		// An alias repeats a node redacted where it is defined.
	}
}

// redactAll replaces every scalar under n.
func redactAll(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		n.Value, n.Tag, n.Style = redactedValue, "!!str", 0
	case yaml.SequenceNode, yaml.MappingNode:
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 0 {
				continue // keys stay
			}
			redactAll(c)
		}
	}
}

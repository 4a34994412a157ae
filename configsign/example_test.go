package configsign_test

import (
	"bytes"
	"fmt"

	"github.com/edgegate/edgegate/configsign"
)

// An operator signs a document; a gateway holding the public key checks it
// against the version it runs.
func Example() {
	seed := bytes.NewReader(bytes.Repeat([]byte{7}, 64)) // crypto/rand.Reader in real use
	key, _ := configsign.GenerateKey(seed)
	signed, line, _ := configsign.SignDocument(key, []byte("log: {level: debug}\n"), 1700000000)
	fmt.Println(line.Version, line.KeyID == key.Public().ID())

	gw := configsign.Verifier{Keys: []configsign.PublicKey{key.Public()}}
	c, err := gw.Check(signed, nil, configsign.Running{Version: 1690000000}, configsign.Policy{})
	fmt.Println(c.Version, err)
	_, err = gw.Check(signed, nil, configsign.Running{Version: 1800000000}, configsign.Policy{})
	fmt.Println(err)
	// Output:
	// 1700000000 true
	// 1700000000 <nil>
	// version 1700000000 is older than the running version 1800000000 (only a local operator may go back, with force)
}

package mqtttest

import (
	"net"
	"net/url"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// DialDroppable is Dial, and also returns drop, which closes the client's
// network connection without a DISCONNECT, as a device that loses power
// or its network does: the broker then publishes the client's will (set
// one with adjust: o.SetWill). The caller disconnects the client.
func DialDroppable(broker, id string, adjust ...func(*paho.ClientOptions)) (c paho.Client, drop func(), err error) {
	var mu sync.Mutex
	var conn net.Conn
	capture := func(o *paho.ClientOptions) {
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			nc, err := net.DialTimeout("tcp", u.Host, Timeout)
			mu.Lock()
			conn = nc
			mu.Unlock()
			return nc, err
		})
	}
	c, err = Dial(broker, id, append(adjust, capture)...)
	if err != nil {
		return nil, nil, err
	}
	return c, func() {
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			conn.Close()
		}
	}, nil
}

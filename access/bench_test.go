package access

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkConnectStorm authenticates 5,000 distinct users through
// Checker.Authenticate from 64 goroutines at once, as a fleet reconnecting
// after a gateway restart does: cold (an empty cache: one argon2id run per
// user, GOMAXPROCS at a time) and warm (every success cached). It reports
// the wall time of the whole storm. The gateway's own figure, with MQTT,
// TLS-free TCP and its memory limit, comes from edgegate bench --auth.
func BenchmarkConnectStorm(b *testing.B) {
	const devices = 5000
	hash, err := HashSecret([]byte("bench-secret"))
	if err != nil {
		b.Fatal(err)
	}
	c := Config{ClientID: ClientIDUsername, ACL: []Rule{{Users: []string{Everyone}, Publish: []string{"devices/%u/#"}}}}
	for i := range devices {
		c.Users = append(c.Users, User{Username: fmt.Sprintf("d-%04d", i), PasswordHash: hash})
	}
	storm := func(ch *Checker) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan int)
		for range 64 {
			wg.Go(func() {
				for i := range next {
					name := fmt.Sprintf("d-%04d", i)
					if _, err := ch.Authenticate(Request{ClientID: name, Username: name, Password: []byte("bench-secret")}); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for i := range devices {
			next <- i
		}
		close(next)
		wg.Wait()
		return time.Since(start)
	}
	for _, warm := range []bool{false, true} {
		b.Run(fmt.Sprintf("warm=%v", warm), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				ch, err := Compile(c, Options{Listeners: []Listener{{ID: "tcp", Address: ":1883"}}})
				if err != nil {
					b.Fatal(err)
				}
				if warm {
					storm(ch)
				}
				runtime.GC()
				b.StartTimer()
				total += storm(ch)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/storm")
			b.ReportMetric(float64(total.Microseconds())/float64(b.N*devices), "µs/device")
		})
	}
}

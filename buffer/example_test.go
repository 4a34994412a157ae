package buffer_test

import (
	"context"
	"fmt"
	"os"

	"github.com/edgegate/edgegate/buffer"
)

func Example() {
	dir, _ := os.MkdirTemp("", "edgegate-buffer")
	defer os.RemoveAll(dir)
	cfg := buffer.DefaultConfig()
	cfg.Dir = dir
	cfg.MinFreeBytes = buffer.MinFreeFloor
	b, err := buffer.Open(cfg, nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()

	// One record per route: the same event for two uplinks.
	event := []byte(`{"temp":21.5}`)
	if err := b.Append(ctx, []buffer.Record{{Queue: "cloud", Data: event}, {Queue: "backup", Data: event}}, true); err != nil {
		fmt.Println(err)
		return
	}

	q, _ := b.Queue("cloud")
	batch, _ := q.Next(ctx, 100, 1<<20)
	for _, r := range batch.Records() {
		fmt.Println(string(r))
	}
	_ = batch.Ack() // or batch.Nack() to have the records delivered again
	fmt.Println(b.Stats().Queues)

	cancel()
	<-done
	_ = b.Close()
	// Output:
	// {"temp":21.5}
	// map[backup:{1 13} cloud:{0 0}]
}

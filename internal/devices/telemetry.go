package devices

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Telemetry returns the payloads of a simulated climate sensor: JSON
// {"seq","temperature","humidity","ts"} following a slow random walk around
// 21.5 °C and 45 % relative humidity, the same for the same seed.
func Telemetry(seed uint64) Payload {
	t := &telemetry{rng: rand.New(rand.NewPCG(seed, 0x5eed)), temperature: 21.5, humidity: 45}
	return t.next
}

type telemetry struct {
	rng         *rand.Rand
	temperature float64
	humidity    float64
}

func (t *telemetry) next(seq int64, now time.Time) []byte {
	t.temperature += (t.rng.Float64() - 0.5) * 0.2
	t.temperature += (21.5 - t.temperature) * 0.05
	t.humidity += (t.rng.Float64() - 0.5) * 0.5
	t.humidity += (45 - t.humidity) * 0.05
	b := make([]byte, 0, 112)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"temperature":`...)
	b = strconv.AppendFloat(b, math.Round(t.temperature*100)/100, 'f', -1, 64)
	b = append(b, `,"humidity":`...)
	b = strconv.AppendFloat(b, math.Round(t.humidity*10)/10, 'f', -1, 64)
	b = append(b, `,"ts":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b
}

//go:build race

package gateway

// raceEnabled: the race detector changes what allocates (sync.Pool drops
// items at random), so allocation budgets are checked without it.
const raceEnabled = true

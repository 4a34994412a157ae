package cloudevent

// Config events: the gateway reporting what happened to a configuration
// pushed, pulled or reloaded (applied, rejected, rolled back).

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The types of config events.
const (
	TypeConfigApplied    = "io.edgegate.config.applied"
	TypeConfigRejected   = "io.edgegate.config.rejected"
	TypeConfigRolledBack = "io.edgegate.config.rolledback"
)

// ConfigChange is the data of a config event.
type ConfigChange struct {
	Version         int64    `json:"version"`
	Hash            string   `json:"hash,omitempty"`
	PreviousVersion int64    `json:"previous_version"`
	PreviousHash    string   `json:"previous_hash,omitempty"`
	Source          string   `json:"source"`
	Origin          string   `json:"origin,omitempty"`
	Reason          string   `json:"reason,omitempty"`
	Errors          []string `json:"errors,omitempty"`
	// Diff lists the paths of the keys that changed (never their values).
	Diff []string `json:"diff,omitempty"`
}

// ConfigEvent builds the event of type typ (TypeConfig…) about the gateway
// gatewayID's configuration at t: source edgegate://{gateway_id}/config,
// JSON data c.
func ConfigEvent(gatewayID, typ string, c ConfigChange, t time.Time) (Event, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("event id: %w", err)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return Event{}, fmt.Errorf("config event data: %w", err)
	}
	return Event{
		ID:              id.String(),
		Source:          "edgegate://" + gatewayID + "/config",
		Type:            typ,
		Time:            t.UTC(),
		DataContentType: "application/json",
		Data:            data,
	}, nil
}

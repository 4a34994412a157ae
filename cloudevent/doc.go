// Package cloudevent owns edgegate's CloudEvent record: what an event is
// from the moment a device's MQTT message is mapped until a sender writes
// it out.
//
// It owns:
//   - the names: the CloudEvents context attributes and the names an
//     extension may not take (IsContextAttribute, Reserved), edgegate's own
//     extension names (ExtTopic, ExtReplayed, ExtError, ExtClientID, …) and
//     the names no device may set (ReservedForGateway), the rule for
//     extension names (ValidExtensionName), the folding of MQTT user
//     property keys into distinct names (ExtensionName, props.go), which
//     content types are CloudEvents formats (CloudEventsFormat), and
//     CloudEvents String sanitising (SanitizeString);
//   - the record, Event: attributes, ordered typed extensions, data as a
//     JSON value or bytes, and the Replayed flag, which encoders render as
//     replayed=true and the buffer never stores;
//   - the buffer form (Encode, Decode): compact, versioned, cheap to read.
//     Decode also reads CloudEvents JSON, the form earlier releases stored,
//     so a buffer written by them drains after an upgrade;
//   - the CloudEvents JSON format writer (AppendJSON), without reflection;
//   - the mapping of an MQTT message to an event (Config, Compile,
//     Mapper.Map): topic templates for source, type and subject, a
//     time-ordered id, the publisher's identity, JSON data or data_base64
//     under a content type every uplink mode can carry; and the events of
//     devices connecting and disconnecting (Mapper.Presence);
//   - the events of the gateway's own configuration (ConfigEvent:
//     io.edgegate.config.applied|rejected|rolledback).
//
// cloudevent does no I/O and imports no other edgegate package but
// internal/yamlconf (its config errors); every layer may import it (like
// prometheus's model/labels). It must not import
// sdk-go: the hot path keeps its per-event cost (URI parsing, reflection)
// out.
//
// Concurrency: a *Mapper is immutable after Compile and safe for concurrent
// use. An Event is a plain value: share it read-only or copy it; the
// functions here keep no state.
package cloudevent

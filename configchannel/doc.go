// Package configchannel owns the two channels that bring configuration
// documents to a gateway behind NAT without any inbound connection: pull
// (Puller polls a URL with If-None-Match, jitter and backoff) and MQTT
// (MQTTChannel subscribes to a config topic over the cloud MQTT uplink's
// own connection and answers on a status topic). Both hand every new
// document to the gateway's one apply path, an ApplyFunc, which parses,
// verifies the signature (configsign), validates and applies it; the
// channels only fetch, deduplicate, count and report. A channel never
// changes the running gateway on its own: a server that is down, slow or
// answers garbage costs a counted, rate-limited log line and a line in
// /status, nothing more. Their config sections (PullConfig, MQTTConfig)
// sit under remote_config.
//
// configchannel must not import gateway, uplink, buffer, mqtt or rules: the
// gateway wires it (the MQTT uplink's sender satisfies Conn). It imports
// only configsign (the signature header's name), internal/yamlconf,
// internal/metricname, internal/ratelog and internal/certfile (ca_file) of
// edgegate's packages.
//
// Concurrency: Puller.Run and MQTTChannel.Run each run one goroutine (the
// caller's) that calls the ApplyFunc one document at a time; the MQTT
// handler only queues. Status is safe to call concurrently with Run.
package configchannel

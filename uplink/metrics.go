package uplink

// MetricsHelp returns the HELP text of every metric family uplink creates,
// by family name. The gateway writes them into /metrics.
func MetricsHelp() map[string]string {
	return map[string]string{
		"edgegate_uplink_requests_total":             "HTTP requests sent to the uplink, by response status code (\"error\": no response).",
		"edgegate_uplink_events_sent_total":          "Events the uplink's endpoint accepted.",
		"edgegate_uplink_request_duration_seconds":   "Time from sending a request (HTTP) or batch of publishes (MQTT) to its answer.",
		"edgegate_uplink_mqtt_publishes_total":       "MQTT publishes acknowledged by the cloud broker.",
		"edgegate_uplink_mqtt_send_failures_total":   "Batches the MQTT uplink failed to publish.",
		"edgegate_uplink_mqtt_connection_lost_total": "Times the MQTT uplink lost its connection to the cloud broker.",
		"edgegate_uplink_mqtt_store_errors_total":    "Failures of the MQTT uplink's session store (full or read-only disk).",
		"edgegate_forward_events_delivered_total":    "Buffered events the uplink acknowledged.",
		"edgegate_forward_events_replayed_total":     "Events sent marked replayed=true (they waited out a failure or a restart).",
		"edgegate_forward_send_failures_total":       "Failed sends of the delivery loop (each retry counts).",
		"edgegate_uplink_up":                         "1 if the uplink's last send succeeded (or none failed yet), else 0.",
		"edgegate_event_delivery_latency_seconds":    "Time from an event's append to the buffer (its device's ack) to the uplink's ack.",
	}
}

// requestBuckets are the upper bounds, in seconds, of
// edgegate_uplink_request_duration_seconds: from a LAN round trip to a
// request that runs into the timeout.
func requestBuckets() []float64 {
	return []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
}

// latencyBuckets are the upper bounds, in seconds, of
// edgegate_event_delivery_latency_seconds: from a live event's few
// milliseconds to a backlog that waited out an hour-long outage.
func latencyBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
}

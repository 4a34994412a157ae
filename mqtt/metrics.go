package mqtt

// MetricsHelp returns the HELP text of every metric family mqtt creates,
// by family name. The gateway writes them into /metrics.
func MetricsHelp() map[string]string {
	return map[string]string{
		"edgegate_mqtt_messages_received_total":           "PUBLISH packets received from devices, by QoS.",
		"edgegate_mqtt_handler_errors_total":              "Device messages the gateway did not store, by kind: overloaded, rejected, other.",
		"edgegate_mqtt_messages_dropped_total":            "Device messages dropped by reason: overloaded (QoS 0), rejected, reserved_topic, topic_limit.",
		"edgegate_mqtt_messages_too_large_total":          "Packets or payloads over the size limits, refused.",
		"edgegate_mqtt_overload_disconnects_total":        "MQTT 3.1.1 connections closed because a QoS 1/2 message could not be stored.",
		"edgegate_mqtt_connections_refused_total":         "Connections refused by reason (max_connections, origin, tls_handshake, authentication and ACL reasons).",
		"edgegate_mqtt_auth_failures_total":               "Refused connections that failed device authentication, by reason.",
		"edgegate_mqtt_acl_denied_total":                  "Publishes and subscriptions the ACLs denied, by action.",
		"edgegate_mqtt_revoked_disconnects_total":         "Connected devices disconnected because their credentials were revoked by a reload.",
		"edgegate_mqtt_publish_delayed_total":             "Times a connection over publish_rate was slowed down.",
		"edgegate_mqtt_rate_limit_disconnects_total":      "Connections closed for staying over publish_rate.",
		"edgegate_mqtt_fair_share_delayed_total":          "Publishes held back to the publisher's fair share while the gateway limits its intake to what the uplinks deliver.",
		"edgegate_mqtt_fair_share_per_second":             "The publish rate each connection may use while intake is limited (its fair share); 0 when none is held back.",
		"edgegate_mqtt_subscriptions_refused_total":       "Subscriptions refused by reason.",
		"edgegate_mqtt_qos2_resends_total":                "QoS 2 resends answered with a normal PUBREC (stored once).",
		"edgegate_mqtt_packet_budget_timeouts_total":      "Large packets that waited too long for the shared read budget.",
		"edgegate_mqtt_retained_refused_total":            "Messages delivered but not retained, by the limit they crossed (count, bytes).",
		"edgegate_mqtt_clients_connected":                 "Devices connected now.",
		"edgegate_mqtt_retained_messages":                 "Retained messages the broker holds.",
		"edgegate_mqtt_retained_bytes":                    "Bytes of the retained messages the broker holds.",
		"edgegate_mqtt_tls_cert_expiry_timestamp_seconds": "When the listener's TLS certificate expires, in Unix seconds.",
		"edgegate_mqtt_presence_not_stored_total":         "Presence and will events that could not be stored, by event.",
		"edgegate_mqtt_wills_dropped_total":               "Wills removed at connect and never sent, by reason.",
	}
}

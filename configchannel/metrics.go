package configchannel

// MetricsHelp returns the HELP text of every metric family configchannel
// creates, by family name. The gateway writes them into /metrics.
func MetricsHelp() map[string]string {
	return map[string]string{
		"edgegate_config_pull_total":                 "Polls of the config pull URL, by result.",
		"edgegate_config_mqtt_total":                 "Configurations received on the MQTT config channel, by result.",
		"edgegate_config_mqtt_status_failures_total": "Status reports the MQTT config channel failed to publish.",
	}
}

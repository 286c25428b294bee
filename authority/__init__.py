"""The health authority's tools: the fleet view over MQTT (tail, collect, summary, announce)
and signed model bundles (keygen, bundle). May import edge/ (the formats it shares with the
kiosks); edge/ never imports it."""

"""The authority's commands, as `mpox --help` lists them (nothing imported until one runs)."""

from edge.commands import Registered

COMMANDS = [
    Registered("fleet", "authority.cli:fleet",
               "The health authority's view of its kiosks over MQTT: tail, collect, summary, announce."),
    Registered("models keygen", "authority.cli:models_keygen", "Make an ed25519 key pair for signing model bundles."),
    Registered("models bundle", "authority.cli:models_bundle",
               "Sign MODEL.xml (with its .bin) and a probe set into a bundle, after the same model check a kiosk runs."),
]

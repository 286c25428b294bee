"""edge/port.py: outputs see the kiosk only through its port; the consent rule is the kiosk's,
published in its status."""

import pytest

from edge.config import KioskConfig, SourceConfig, WebConfig
from edge.decision import State
from edge.kiosk import Kiosk
from edge.port import Port


class Screen:
    """An output that offers "I agree", as the kiosk's web screen does."""

    offers_consent = True

    def on_event(self, event):
        pass

    def on_status(self, status):
        pass


def test_outputs_reach_the_kiosk_only_through_its_port(tmp_path):
    kiosk = Kiosk(KioskConfig(state_dir=tmp_path))
    port = Port(kiosk)
    assert port.status is kiosk.status and port.model == kiosk.model and port.cfg is kiosk.cfg
    for inside in ("engine", "store", "machine", "capture", "outputs", "stop"):
        with pytest.raises(AttributeError):
            getattr(port, inside)
    kiosk.store.close()


@pytest.mark.parametrize("source, consent, asked", [
    (SourceConfig(), True, True),  # a camera (the demo stands for one) with its screen: one tap, one screening
    (SourceConfig(), False, False),  # web.consent off
    (SourceConfig(kind="folder", target="."), True, False),  # a recording: nobody there to tap
])
def test_the_kiosk_asks_consent_by_its_rule_and_says_so_in_its_status(tmp_path, source, consent, asked):
    kiosk = Kiosk(KioskConfig(state_dir=tmp_path, source=source, web=WebConfig(consent=consent)))
    assert kiosk.status.consent_lapse_s is None  # no screen attached: nobody is asked
    kiosk.attach([Screen()])
    assert (kiosk.status.consent_lapse_s == kiosk.cfg.decision.consent_lapse_s) is asked
    assert (kiosk.status.state == State.AWAITING_CONSENT) is asked
    kiosk.store.close()


def test_an_older_config_with_web_idle_reset_s_still_loads(tmp_path):
    from edge.config import load_config

    p = tmp_path / "kiosk.yaml"
    p.write_text("web:\n  idle_reset_s: 30\n")
    assert load_config(p).decision.consent_lapse_s == 30

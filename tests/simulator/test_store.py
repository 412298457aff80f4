"""The handset store: bounded per handset and overall, single-part SMS decoded on read."""

from __future__ import annotations

from simulator.store import HandsetStore


def _raw(store: HandsetStore, msisdn: str, text: str, message_id: str) -> None:
    store.add_raw_sms(msisdn, "2424", text.encode("utf-16-be"), "utf-16-be", 8, message_id, 1.0)


def _mo(store: HandsetStore, msisdn: str, text: str) -> None:
    store.add(
        msisdn=msisdn, peer="2424", direction="mo", kind="sms", text=text, parts=1, data_coding=0
    )


def test_raw_sms_is_decoded_when_read_with_its_receipt() -> None:
    store = HandsetStore()
    _raw(store, "48600000001", "Zażółć", "a1")
    store.set_receipt("a1", "DELIVRD")
    [message] = store.messages("48600000001")
    assert (message.text, message.parts, message.data_coding) == ("Zażółć", 1, 8)
    assert (message.direction, message.kind, message.message_ids) == ("mt", "sms", ("a1",))
    assert message.receipt == "DELIVRD"
    assert store.messages() == [message]


def test_bounded_per_handset_and_overall() -> None:
    store = HandsetStore(keep=3, keep_total=5)
    for i in range(6):
        _raw(store, "48600000001", f"a{i}", f"a{i}")
    assert [m.text for m in store.messages("48600000001")] == ["a3", "a4", "a5"]
    store.set_receipt("a0", "DELIVRD")  # forgotten: nothing to update, no error
    for i in range(4):
        _mo(store, f"4860000010{i}", f"b{i}")
    assert [m.text for m in store.messages()] == ["a5", "b0", "b1", "b2", "b3"]
    assert [m.text for m in store.messages("48600000001")] == ["a5"]
    for i in range(4, 9):
        _mo(store, f"4860000010{i}", f"b{i}")
    assert store.messages("48600000001") == []
    assert len(store.messages()) == 5


def test_subscribers_get_receipt_changes_only_if_they_asked() -> None:
    store = HandsetStore()
    everything = store.subscribe()
    new_only = store.subscribe(receipts=False)
    _raw(store, "48600000001", "Pakiet", "a1")
    _mo(store, "48600000001", "PAKIET")
    store.set_receipt("a1", "DELIVRD")
    seen = [everything.get_nowait() for _ in range(everything.qsize())]
    assert [(m.direction, m.receipt) for m in seen if m] == [
        ("mt", None),
        ("mo", None),
        ("mt", "DELIVRD"),
    ]
    news = [new_only.get_nowait() for _ in range(new_only.qsize())]
    assert [(m.direction, m.receipt) for m in news if m] == [("mt", None), ("mo", None)]
    store.unsubscribe(everything)
    store.set_receipt("a1", "UNDELIV")  # nobody wants receipts now: nothing is read for it
    assert new_only.empty()
    store.unsubscribe(new_only)
    store.unsubscribe(new_only)  # twice is harmless
    assert store.messages("48600000001")[0].receipt == "UNDELIV"


def test_a_lagging_receipt_free_subscriber_is_cut_off_like_any_other() -> None:
    from simulator.store import SUBSCRIBER_BACKLOG

    store = HandsetStore(keep=SUBSCRIBER_BACKLOG + 10)
    queue = store.subscribe(receipts=False)
    for i in range(SUBSCRIBER_BACKLOG + 1):
        _mo(store, "48600000001", f"m{i}")
    items = [queue.get_nowait() for _ in range(queue.qsize())]
    assert items[-1] is None  # "you fell behind": resubscribe and re-list
    _mo(store, "48600000001", "after")
    assert queue.qsize() == 0  # no longer subscribed


def test_a_subscriber_without_a_backlog_bound_is_never_cut_off() -> None:
    """The load driver's reply waiter: thousands behind in a burst, it reads on; cut off, it
    re-read every waiting handset's history from the store and fell further behind."""
    from simulator.store import SUBSCRIBER_BACKLOG

    store = HandsetStore(keep=3 * SUBSCRIBER_BACKLOG)
    queue = store.subscribe(receipts=False, backlog=None)
    bounded = store.subscribe(receipts=False)
    for i in range(3 * SUBSCRIBER_BACKLOG):
        _mo(store, "48600000001", f"m{i}")
    items = [queue.get_nowait() for _ in range(queue.qsize())]
    assert len(items) == 3 * SUBSCRIBER_BACKLOG and None not in items
    assert [m.text for m in items[:2]] == ["m0", "m1"]
    assert bounded.get_nowait() is not None and bounded.qsize() == SUBSCRIBER_BACKLOG
    store.close()  # the end of the stream still reaches it
    assert queue.get_nowait() is None

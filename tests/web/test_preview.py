"""The live picture forgets the last frame when nobody watches: the next person to tap "I agree"
must not see the previous person's skin while their own first frame is being encoded."""

from edge.web.preview import Preview


def test_the_last_viewer_leaving_drops_the_picture():
    preview = Preview(port=None, fps=5)  # not started: only what watch() does to the picture
    preview.watch(1)
    preview.latest = (7, b"a jpeg of the previous visitor")
    preview.watch(1)
    preview.watch(-1)
    assert preview.latest == (7, b"a jpeg of the previous visitor")  # someone still watches
    preview.watch(-1)
    number, jpeg = preview.latest
    assert jpeg == b"" and number == 8  # a new number: a stream that showed 7 waits for the next real frame

# cython: language_level=3
"""One WebSocket frame written to a uvloop transport's socket from another thread.

Optional. ``setup.py`` builds it beside the other compiled hot paths;
``frames_out.FrameWriter.write_now`` uses it, and without it (not built, or
``COSMICTRON_PURE=1``) every reply goes the event loop's way, as before issue 11's srv7
round. Why it is compiled: the checks and the write must run with no chance for the
event loop's thread to take the GIL between them. Python code may hand the GIL over at
any call (the interpreter's eval breaker); this function runs none: uvloop's
``is_closing`` and ``get_write_buffer_size`` are compiled too, and ``ioctl`` and
``send`` are called holding the GIL, as uvloop makes its own ``write``. So while it
runs, the loop can neither close the transport (its file descriptor cannot be closed and
reused by another connection), nor buffer or write anything on it.

``send_frame(ws, transport, fd, data)`` writes ``data`` whole to ``fd`` and returns
True only when the WebSocket is not closed, the transport is open, uvloop and libuv hold nothing unsent for it, and the
kernel's send queue is empty (``SIOCOUTQ``: TCP then takes a small write whole, its
first buffer allocated unconditionally). It returns False, having written nothing,
otherwise (also on ``EAGAIN`` or an error: the loop's write then meets it). A write the
kernel cut short (not expected, see above) returns the count written, for the caller to
abort the connection: nothing may follow a partial frame.
"""

cdef extern from "sys/types.h":
    ctypedef long ssize_t

cdef extern from "sys/socket.h":
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int MSG_DONTWAIT
    int MSG_NOSIGNAL

cdef extern from "sys/ioctl.h":
    int ioctl(int fd, unsigned long request, int *out)

cdef extern from "linux/sockios.h":
    unsigned long SIOCOUTQ


def send_frame(object ws, object transport, int fd, bytes data):
    """See the module docstring: True, False, or the count of a partial write."""
    cdef int unsent = -1
    cdef ssize_t sent
    cdef Py_ssize_t size = len(data)
    # aiohttp's ``WebSocketResponse.closed`` is this attribute: read as an attribute here
    # (the property is Python code, where the GIL could change hands), so a close frame
    # the loop wrote is never followed by a frame from here.
    if ws._closed or transport.is_closing() or transport.get_write_buffer_size():
        return False
    if ioctl(fd, SIOCOUTQ, &unsent) != 0 or unsent != 0:
        return False
    sent = send(fd, <const char *>data, size, MSG_DONTWAIT | MSG_NOSIGNAL)
    if sent == size:
        return True
    if sent < 0:
        return False  # EAGAIN, EWOULDBLOCK or an error the loop's own write will meet
    return sent

"""Text files the runtime reads (configs, xproto, password and model-deps files) are UTF-8.

When one is not, the user needs the file and the place of the first bad byte, in one line:
Python's own message ("'utf-8' codec can't decode byte 0xe9 in position 11: invalid
continuation byte") names neither the file nor a line, and PyYAML's spreads over two lines.
"""

from __future__ import annotations

__all__ = ["NotUtf8Error", "decode_utf8"]


class NotUtf8Error(ValueError):
    """The bytes are not UTF-8; the message says where (`line`, `column`, 1-based)."""

    def __init__(self, byte: int, line: int, column: int):
        self.byte, self.line, self.column = byte, line, column
        super().__init__(f"not UTF-8 text (byte 0x{byte:02x} at line {line}, column {column})")

    def at(self, file: object) -> str:
        """The message in the `FILE:LINE:COLUMN: message` form of syntax errors."""
        return f"{file}:{self.line}:{self.column}: not UTF-8 text (byte 0x{self.byte:02x})"


def decode_utf8(data: bytes) -> str:
    """`data` as text; a leading byte-order mark is dropped. Raises `NotUtf8Error`."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # utf-8-sig counts positions after the byte-order mark
        offset = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        before = data[:offset]
        line = before.count(b"\n") + 1
        column = offset - (before.rfind(b"\n") + 1) + 1
        raise NotUtf8Error(data[offset], line, column) from None

//! The subset of MessagePack the module ABI uses: nil, bool, ints, floats, str, bin,
//! arrays and maps with string keys. Written here (a few dozen lines) rather than taken
//! from a crate, so the SDK builds from Debian's packages alone.

use crate::Error;

/// Appends MessagePack to a byte vector.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    pub fn nil(&mut self) {
        self.buf.push(0xc0);
    }

    pub fn bool(&mut self, value: bool) {
        self.buf.push(if value { 0xc3 } else { 0xc2 });
    }

    pub fn uint(&mut self, value: u64) {
        if value < 128 {
            self.buf.push(value as u8);
        } else if value <= 0xff {
            self.buf.extend_from_slice(&[0xcc, value as u8]);
        } else if value <= 0xffff {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&(value as u16).to_be_bytes());
        } else if value <= 0xffff_ffff {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&(value as u32).to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&value.to_be_bytes());
        }
    }

    pub fn int(&mut self, value: i64) {
        if value >= 0 {
            self.uint(value as u64);
        } else if value >= -32 {
            self.buf.push(value as i8 as u8);
        } else if value >= i8::MIN as i64 {
            self.buf.extend_from_slice(&[0xd0, value as i8 as u8]);
        } else if value >= i16::MIN as i64 {
            self.buf.push(0xd1);
            self.buf.extend_from_slice(&(value as i16).to_be_bytes());
        } else if value >= i32::MIN as i64 {
            self.buf.push(0xd2);
            self.buf.extend_from_slice(&(value as i32).to_be_bytes());
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&value.to_be_bytes());
        }
    }

    pub fn f32(&mut self, value: f32) {
        self.buf.push(0xca);
        self.buf.extend_from_slice(&value.to_bits().to_be_bytes());
    }

    pub fn f64(&mut self, value: f64) {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&value.to_bits().to_be_bytes());
    }

    pub fn str(&mut self, value: &str) {
        let n = value.len();
        if n < 32 {
            self.buf.push(0xa0 | n as u8);
        } else if n <= 0xff {
            self.buf.extend_from_slice(&[0xd9, n as u8]);
        } else if n <= 0xffff {
            self.buf.push(0xda);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdb);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(value.as_bytes());
    }

    pub fn bin(&mut self, value: &[u8]) {
        let n = value.len();
        if n <= 0xff {
            self.buf.extend_from_slice(&[0xc4, n as u8]);
        } else if n <= 0xffff {
            self.buf.push(0xc5);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xc6);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(value);
    }

    pub fn array(&mut self, n: usize) {
        if n < 16 {
            self.buf.push(0x90 | n as u8);
        } else if n <= 0xffff {
            self.buf.push(0xdc);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdd);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Reads MessagePack from a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(what: &str) -> Error {
    Error::new("GuestDecodeError", what)
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        &self.buf[start..end]
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.buf.get(self.pos).ok_or_else(|| bad("unexpected end of document"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.buf.len() - self.pos < n {
            return Err(bad("unexpected end of document"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, Error> {
        let mut v = 0u64;
        for b in self.take(n)? {
            v = (v << 8) | *b as u64;
        }
        Ok(v)
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// True (and consumed) if the next value is nil.
    pub fn nil(&mut self) -> bool {
        if self.peek() == Some(0xc0) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn bool(&mut self) -> Result<bool, Error> {
        match self.byte()? {
            0xc2 => Ok(false),
            0xc3 => Ok(true),
            _ => Err(bad("expected a bool")),
        }
    }

    /// Any msgpack integer, as i128 (covers u64 and i64).
    pub fn integer(&mut self) -> Result<i128, Error> {
        let b = self.byte()?;
        Ok(match b {
            0x00..=0x7f => b as i128,
            0xe0..=0xff => (b as i8) as i128,
            0xcc => self.be(1)? as i128,
            0xcd => self.be(2)? as i128,
            0xce => self.be(4)? as i128,
            0xcf => self.be(8)? as i128,
            0xd0 => (self.be(1)? as u8 as i8) as i128,
            0xd1 => (self.be(2)? as u16 as i16) as i128,
            0xd2 => (self.be(4)? as u32 as i32) as i128,
            0xd3 => (self.be(8)? as i64) as i128,
            _ => return Err(bad("expected an integer")),
        })
    }

    pub fn float(&mut self) -> Result<f64, Error> {
        match self.byte()? {
            0xca => Ok(f32::from_bits(self.be(4)? as u32) as f64),
            0xcb => Ok(f64::from_bits(self.be(8)?)),
            _ => Err(bad("expected a float")),
        }
    }

    pub fn str(&mut self) -> Result<&'a str, Error> {
        let b = self.byte()?;
        let n = match b {
            0xa0..=0xbf => (b & 0x1f) as usize,
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err(bad("expected a str")),
        };
        core::str::from_utf8(self.take(n)?).map_err(|_| bad("a str is not UTF-8"))
    }

    pub fn bin(&mut self) -> Result<&'a [u8], Error> {
        let n = match self.byte()? {
            0xc4 => self.be(1)? as usize,
            0xc5 => self.be(2)? as usize,
            0xc6 => self.be(4)? as usize,
            _ => return Err(bad("expected bin")),
        };
        self.take(n)
    }

    pub fn array(&mut self) -> Result<usize, Error> {
        let b = self.byte()?;
        Ok(match b {
            0x90..=0x9f => (b & 0x0f) as usize,
            0xdc => self.be(2)? as usize,
            0xdd => self.be(4)? as usize,
            _ => return Err(bad("expected an array")),
        })
    }

    pub fn map(&mut self) -> Result<usize, Error> {
        let b = self.byte()?;
        Ok(match b {
            0x80..=0x8f => (b & 0x0f) as usize,
            0xde => self.be(2)? as usize,
            0xdf => self.be(4)? as usize,
            _ => return Err(bad("expected a map")),
        })
    }

    /// Skip one value of any kind.
    pub fn skip(&mut self) -> Result<(), Error> {
        let b = self.peek().ok_or_else(|| bad("unexpected end of document"))?;
        match b {
            0xc0 | 0xc2 | 0xc3 => {
                self.pos += 1;
            }
            0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xcf | 0xd0..=0xd3 => {
                self.integer()?;
            }
            0xca | 0xcb => {
                self.float()?;
            }
            0xa0..=0xbf | 0xd9..=0xdb => {
                self.str()?;
            }
            0xc4..=0xc6 => {
                self.bin()?;
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                for _ in 0..self.array()? {
                    self.skip()?;
                }
            }
            0x80..=0x8f | 0xde | 0xdf => {
                for _ in 0..self.map()? * 2 {
                    self.skip()?;
                }
            }
            _ => return Err(bad("unsupported msgpack type")),
        }
        Ok(())
    }
}

//! Column values and their wire form (docs/reference/module-abi.md, Encoding).

use crate::msgpack::{Reader, Writer};
use crate::Error;

/// A value that can be a column, an argument or a return value.
pub trait Value: Sized {
    fn encode(&self, w: &mut Writer);
    fn decode(r: &mut Reader) -> Result<Self, Error>;
}

fn range_error(kind: &str) -> Error {
    Error::new("GuestDecodeError", &format!("integer out of range for {}", kind))
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn encode(&self, w: &mut Writer) {
                if (*self as i128) < 0 { w.int(*self as i64) } else { w.uint(*self as u64) }
            }
            fn decode(r: &mut Reader) -> Result<Self, Error> {
                let v = r.integer()?;
                <$t>::try_from(v).map_err(|_| range_error(stringify!($t)))
            }
        }
    )*};
}
int_value!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Value for i128 {
    fn encode(&self, w: &mut Writer) {
        w.bin(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        let b = r.bin()?;
        let a: [u8; 16] = b.try_into().map_err(|_| range_error("i128"))?;
        Ok(i128::from_be_bytes(a))
    }
}

impl Value for u128 {
    fn encode(&self, w: &mut Writer) {
        w.bin(&self.to_be_bytes());
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        let b = r.bin()?;
        let a: [u8; 16] = b.try_into().map_err(|_| range_error("u128"))?;
        Ok(u128::from_be_bytes(a))
    }
}

impl Value for f64 {
    fn encode(&self, w: &mut Writer) {
        w.f64(*self)
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        r.float()
    }
}

impl Value for f32 {
    fn encode(&self, w: &mut Writer) {
        // The host keeps f32 columns as Python floats: send the exact value as a double.
        w.f64(*self as f64)
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        Ok(r.float()? as f32)
    }
}

impl Value for bool {
    fn encode(&self, w: &mut Writer) {
        w.bool(*self)
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        r.bool()
    }
}

impl Value for String {
    fn encode(&self, w: &mut Writer) {
        w.str(self)
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        Ok(r.str()?.to_string())
    }
}

impl<T: Value> Value for Option<T> {
    fn encode(&self, w: &mut Writer) {
        match self {
            None => w.nil(),
            Some(v) => v.encode(w),
        }
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        if r.nil() {
            Ok(None)
        } else {
            Ok(Some(T::decode(r)?))
        }
    }
}

/// `list[T]`. (Binary data is `Bytes`, not `Vec<u8>`.)
impl<T: Value> Value for Vec<T> {
    fn encode(&self, w: &mut Writer) {
        w.array(self.len());
        for v in self {
            v.encode(w);
        }
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        let n = r.array()?;
        let mut out = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            out.push(T::decode(r)?);
        }
        Ok(out)
    }
}

impl<T: Value> Value for &T {
    fn encode(&self, w: &mut Writer) {
        (*self).encode(w)
    }
    fn decode(_: &mut Reader) -> Result<Self, Error> {
        Err(Error::new("GuestDecodeError", "a reference cannot be decoded"))
    }
}

/// `bytes`: binary data.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub Vec<u8>);

impl Value for Bytes {
    fn encode(&self, w: &mut Writer) {
        w.bin(&self.0)
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        Ok(Bytes(r.bin()?.to_vec()))
    }
}

macro_rules! fixed_bytes {
    ($name:ident, $n:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $n]);

        impl Default for $name {
            fn default() -> Self {
                $name([0; $n])
            }
        }

        impl $name {
            pub fn to_hex(&self) -> String {
                self.0.iter().map(|b| format!("{:02x}", b)).collect()
            }
        }

        impl Value for $name {
            fn encode(&self, w: &mut Writer) {
                w.bin(&self.0)
            }
            fn decode(r: &mut Reader) -> Result<Self, Error> {
                let b = r.bin()?;
                let a: [u8; $n] = b
                    .try_into()
                    .map_err(|_| Error::new("GuestDecodeError", stringify!($name has the wrong length)))?;
                Ok($name(a))
            }
        }
    };
}
fixed_bytes!(Identity, 32, "An identity: 32 bytes.");
fixed_bytes!(ConnectionId, 16, "A connection id: 16 bytes, big-endian.");

/// Microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn micros_since_epoch(&self) -> i64 {
        self.0
    }
}

/// A span of time in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeDuration(pub i64);

macro_rules! micros_value {
    ($name:ident) => {
        impl Value for $name {
            fn encode(&self, w: &mut Writer) {
                w.int(self.0)
            }
            fn decode(r: &mut Reader) -> Result<Self, Error> {
                Ok($name(i64::decode(r)?))
            }
        }
    };
}
micros_value!(Timestamp);
micros_value!(TimeDuration);

/// When a scheduled reducer runs: every `Interval` microseconds, or once `At` a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScheduleAt {
    Interval(i64),
    At(Timestamp),
}

impl ScheduleAt {
    pub fn interval_seconds(seconds: f64) -> Self {
        ScheduleAt::Interval((seconds * 1e6).round() as i64)
    }
}

impl Default for ScheduleAt {
    fn default() -> Self {
        ScheduleAt::Interval(1_000_000)
    }
}

impl Value for ScheduleAt {
    fn encode(&self, w: &mut Writer) {
        w.array(2);
        match self {
            ScheduleAt::Interval(us) => {
                w.str("interval");
                w.int(*us);
            }
            ScheduleAt::At(t) => {
                w.str("at");
                w.int(t.0);
            }
        }
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        if r.array()? != 2 {
            return Err(Error::new("GuestDecodeError", "ScheduleAt is [kind, micros]"));
        }
        let kind = r.str()?;
        let micros = i64::decode(r)?;
        match kind {
            "interval" => Ok(ScheduleAt::Interval(micros)),
            "at" => Ok(ScheduleAt::At(Timestamp(micros))),
            _ => Err(Error::new("GuestDecodeError", "ScheduleAt kind is interval or at")),
        }
    }
}

/// `Vector[N]`: N float32 values (semantic memory).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Vector<const N: usize>(pub [f32; N]);

impl<const N: usize> Default for Vector<N> {
    fn default() -> Self {
        Vector([0.0; N])
    }
}

impl<const N: usize> Value for Vector<N> {
    fn encode(&self, w: &mut Writer) {
        let mut bytes = Vec::with_capacity(4 * N);
        for v in self.0.iter() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        w.bin(&bytes)
    }
    fn decode(r: &mut Reader) -> Result<Self, Error> {
        let b = r.bin()?;
        if b.len() != 4 * N {
            return Err(Error::new("GuestDecodeError", "a Vector has the wrong length"));
        }
        let mut out = [0f32; N];
        for (i, chunk) in b.chunks_exact(4).enumerate() {
            out[i] = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Ok(Vector(out))
    }
}

//! # link — protocol frames over a byte stream
//!
//! [`FramedLink`] wraps anything that reads and writes bytes (a serial port, a pty, a test
//! double that injects faults) and moves typed messages over it with `protocol`'s framing.
//! A bad frame (garbage, truncation, bit flip) is counted in [`LinkStats`], logged at debug
//! level and skipped; the caller only ever sees whole, CRC-checked messages or a timeout.
//!
//! [`open_port`] opens a real serial device; [`pty_pair`] makes a pseudo-terminal pair (a real
//! tty, used by the simulated device and the tests); [`list_ports`] lists candidate devices.
//! [`TcpPort`] carries the same frames over TCP — for hardware-in-the-loop rigs (ser2net puts a
//! board's UART on a TCP port) and emulators (qemu-user has no serial ioctls) — and [`open`]
//! picks the kind by name (`tcp:HOST:PORT`, else a serial device).
//!
//! Invariant: no message semantics here — request/response matching lives in the host's
//! client and the device's server.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use protocol::{FrameDecoder, FrameError, MAX_FRAME, encode_frame};
use serde::{Serialize, de::DeserializeOwned};

pub use serialport::{SerialPort, TTYPort};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot open serial port {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: serialport::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a pty pair: {0}")]
    Pty(#[source] serialport::Error),
    #[error("link I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode message: {0}")]
    Encode(FrameError),
    #[error("cannot list serial ports")]
    List(#[source] serialport::Error),
}

/// Counters of what went over the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Frames dropped because of framing, CRC or decoding errors.
    pub bad_frames: u64,
}

/// Typed messages over a byte stream.
#[derive(Debug)]
pub struct FramedLink<P> {
    port: P,
    decoder: Box<FrameDecoder>,
    /// Received bytes not yet fed to the decoder.
    pending: Vec<u8>,
    out: Box<[u8; MAX_FRAME]>,
    stats: LinkStats,
}

impl<P: Read + Write> FramedLink<P> {
    pub fn new(port: P) -> Self {
        FramedLink {
            port,
            decoder: Box::new(FrameDecoder::new()),
            pending: Vec::new(),
            out: Box::new([0; MAX_FRAME]),
            stats: LinkStats::default(),
        }
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Sends one message as one frame and flushes it.
    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), LinkError> {
        let n = encode_frame(msg, &mut self.out[..]).map_err(LinkError::Encode)?;
        self.port.write_all(&self.out[..n])?;
        self.port.flush()?;
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += n as u64;
        Ok(())
    }

    /// Waits until `deadline` for the next good message; `Ok(None)` on timeout. The port's own
    /// read timeout should be short (tens of ms) so the deadline is kept.
    pub fn recv<T: DeserializeOwned>(&mut self, deadline: Instant) -> Result<Option<T>, LinkError> {
        let mut buf = [0u8; 4096];
        loop {
            while !self.pending.is_empty() {
                let fed = self.decoder.feed::<T>(&self.pending);
                let frame = fed.frame;
                let consumed = self.pending.len() - fed.rest.len();
                self.pending.drain(..consumed);
                match frame {
                    Some(Ok(msg)) => {
                        self.stats.frames_received += 1;
                        return Ok(Some(msg));
                    }
                    Some(Err(e)) => {
                        self.stats.bad_frames += 1;
                        tracing::debug!("dropped a bad frame: {e}");
                    }
                    None => {}
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            match self.port.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                Ok(n) => {
                    self.stats.bytes_received += n as u64;
                    self.pending.extend_from_slice(&buf[..n]);
                }
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Read timeout of ports opened here: short, so `recv` deadlines hold.
pub const PORT_READ_TIMEOUT: Duration = Duration::from_millis(20);

/// Opens a serial device in raw mode (8N1, no flow control).
pub fn open_port(path: &str, baud: u32) -> Result<TTYPort, LinkError> {
    serialport::new(path, baud)
        .timeout(PORT_READ_TIMEOUT)
        .open_native()
        .map_err(|source| LinkError::Open { path: path.to_owned(), source })
}

/// A TCP connection used as a port: reads time out after [`PORT_READ_TIMEOUT`] like a serial
/// port's, and the peer closing the connection is an error (a serial line never "closes", so
/// without this a served link would wait on a dead socket forever).
#[derive(Debug)]
pub struct TcpPort(std::net::TcpStream);

impl TcpPort {
    /// `stream` as a port (read timeout set, Nagle off: frames are small and request/response).
    pub fn new(stream: std::net::TcpStream) -> std::io::Result<TcpPort> {
        stream.set_read_timeout(Some(PORT_READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(TcpPort(stream))
    }

    /// Connects to `addr` (`HOST:PORT`).
    pub fn connect(addr: &str) -> Result<TcpPort, LinkError> {
        let err = |source| LinkError::Connect { addr: addr.to_owned(), source };
        std::net::TcpStream::connect(addr).and_then(TcpPort::new).map_err(err)
    }
}

impl Read for TcpPort {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 if !buf.is_empty() => {
                Err(std::io::Error::new(ErrorKind::UnexpectedEof, "the peer closed the connection"))
            }
            n => Ok(n),
        }
    }
}

impl Write for TcpPort {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A serial port or a TCP connection.
#[derive(Debug)]
pub enum Port {
    /// A serial device or pty.
    Serial(TTYPort),
    /// A TCP connection.
    Tcp(TcpPort),
}

impl Read for Port {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Port::Serial(p) => p.read(buf),
            Port::Tcp(p) => p.read(buf),
        }
    }
}

impl Write for Port {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Port::Serial(p) => p.write(buf),
            Port::Tcp(p) => p.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Port::Serial(p) => p.flush(),
            Port::Tcp(p) => p.flush(),
        }
    }
}

/// Opens `name`: `tcp:HOST:PORT` connects over TCP, anything else is a serial device at `baud`.
pub fn open(name: &str, baud: u32) -> Result<Port, LinkError> {
    match name.strip_prefix("tcp:") {
        Some(addr) => TcpPort::connect(addr).map(Port::Tcp),
        None => open_port(name, baud).map(Port::Serial),
    }
}

/// A pseudo-terminal pair, both ends raw: `(controller, device)`. The device end has a path
/// (`/dev/pts/N`) that a separate process can open with [`open_port`].
pub fn pty_pair() -> Result<(TTYPort, TTYPort), LinkError> {
    let (mut a, mut b) = TTYPort::pair().map_err(LinkError::Pty)?;
    a.set_timeout(PORT_READ_TIMEOUT).map_err(LinkError::Pty)?;
    b.set_timeout(PORT_READ_TIMEOUT).map_err(LinkError::Pty)?;
    Ok((a, b))
}

/// A serial device that may be a MIMML device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub path: String,
    pub kind: String,
}

/// Candidate ports: USB CDC-ACM (`/dev/ttyACM*`), USB gadget (`/dev/ttyGS*`), USB serial
/// adapters and UARTs that the kernel reports.
pub fn list_ports() -> Result<Vec<PortInfo>, LinkError> {
    // serialport's non-udev enumeration panics when /sys/class/tty is missing (containers).
    if !cfg!(feature = "udev") && !std::path::Path::new("/sys/class/tty").is_dir() {
        return Ok(Vec::new());
    }
    let ports = serialport::available_ports().map_err(LinkError::List)?;
    let out: Vec<PortInfo> = ports
        .into_iter()
        .map(|p| {
            let kind = match &p.port_type {
                serialport::SerialPortType::UsbPort(u) => {
                    format!("USB {:04x}:{:04x} {}", u.vid, u.pid, u.product.clone().unwrap_or_default())
                }
                serialport::SerialPortType::PciPort => "PCI UART".into(),
                serialport::SerialPortType::BluetoothPort => "Bluetooth".into(),
                serialport::SerialPortType::Unknown => "serial".into(),
            };
            PortInfo { path: p.port_name, kind }
        })
        .collect();
    Ok(preferred_first(out))
}

/// USB CDC-ACM (`ttyACM*`, a device seen from a host) and gadget (`ttyGS*`, a host seen from a
/// device) ports first, then the rest, each group in path order.
fn preferred_first(mut ports: Vec<PortInfo>) -> Vec<PortInfo> {
    ports.sort_by(|a, b| (!is_preferred(&a.path), &a.path).cmp(&(!is_preferred(&b.path), &b.path)));
    ports
}

fn is_preferred(path: &str) -> bool {
    path.contains("ttyACM") || path.contains("ttyGS")
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{HostFrame, Request};

    #[test]
    fn frames_cross_tcp_a_quiet_peer_times_out_and_a_closed_one_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let Port::Tcp(client) = open(&format!("tcp:{addr}"), 0).expect("connects") else { panic!("a TCP port") };
        let (server, _) = listener.accept().expect("accept");
        let mut tx = FramedLink::new(client);
        let mut rx = FramedLink::new(TcpPort::new(server).expect("port"));
        tx.send(&HostFrame { id: 1, req: Request::Ping(2) }).expect("send");
        let got: HostFrame = rx.recv(Instant::now() + Duration::from_secs(2)).expect("io").expect("a frame");
        assert_eq!(got, HostFrame { id: 1, req: Request::Ping(2) });
        let none: Option<HostFrame> = rx.recv(Instant::now() + Duration::from_millis(50)).expect("a timeout");
        assert!(none.is_none());
        drop(tx);
        let closed = rx.recv::<HostFrame>(Instant::now() + Duration::from_secs(2));
        assert!(matches!(closed, Err(LinkError::Io(ref e)) if e.kind() == ErrorKind::UnexpectedEof), "{closed:?}");
        drop(listener);
        let refused = open(&format!("tcp:{addr}"), 0).map(|_| ()).expect_err("the listener is gone");
        assert!(refused.to_string().contains(&addr.to_string()), "{refused}");
    }

    #[test]
    fn frames_cross_a_pty_and_junk_is_counted() {
        let (a, b) = pty_pair().expect("pty");
        let mut tx = FramedLink::new(a);
        let mut rx = FramedLink::new(b);
        tx.port_mut().write_all(b"\x01\x02junk\xFF").expect("junk");
        tx.send(&HostFrame { id: 5, req: Request::Ping(9) }).expect("send");
        let got: HostFrame = rx.recv(Instant::now() + Duration::from_secs(2)).expect("io").expect("a frame");
        assert_eq!(got, HostFrame { id: 5, req: Request::Ping(9) });
        assert_eq!(rx.stats().bad_frames, 1);
        assert_eq!(rx.stats().frames_received, 1);
        // Nothing more: a timeout, not an error.
        let none: Option<HostFrame> = rx.recv(Instant::now() + Duration::from_millis(50)).expect("io");
        assert!(none.is_none());
    }

    #[test]
    fn opening_a_missing_port_names_it() {
        let e = open_port("/dev/ttyDOESNOTEXIST9", 115_200).unwrap_err().to_string();
        assert!(e.contains("/dev/ttyDOESNOTEXIST9"), "{e}");
    }

    #[test]
    fn device_ports_are_listed_first() {
        let port = |path: &str| PortInfo { path: path.into(), kind: "serial".into() };
        let listed = preferred_first(
            ["/dev/ttyS0", "/dev/ttyUSB0", "/dev/ttyGS0", "/dev/ttyACM1", "/dev/ttyACM0"].map(port).to_vec(),
        );
        let paths: Vec<&str> = listed.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyGS0", "/dev/ttyS0", "/dev/ttyUSB0"]);
    }

    #[test]
    fn listed_ports_are_device_nodes_in_order() {
        let ports = list_ports().expect("lists");
        assert!(ports.iter().all(|p| p.path.starts_with("/dev/")), "{ports:?}");
        assert_eq!(preferred_first(ports.clone()), ports, "listing sorts");
    }
}

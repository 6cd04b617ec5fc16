//! Building TwiML documents safely: every attribute and text node is XML-escaped, and the few
//! rules Twilio enforces at call time (no query string in a stream URL, absolute action URLs
//! in inline TwiML) are checked when the document is built, not discovered on a live call.

use std::fmt::Write as _;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TwimlError {
    #[error("stream url must be an absolute wss:// URL, got {0:?}")]
    StreamUrlScheme(String),
    /// Twilio drops `?…` from `<Stream url>`; anything meant for the socket goes in the path
    /// or in `<Parameter>`s (which arrive as `start.customParameters`).
    #[error("stream url must not carry a query string: {0:?}")]
    StreamUrlQuery(String),
    /// Inline TwiML (REST `Twiml=`) has no base URL to resolve against (Twilio error 15004).
    #[error("{attribute} must be an absolute http(s) URL, got {value:?}")]
    RelativeUrl {
        attribute: &'static str,
        value: String,
    },
    #[error("dial target is empty")]
    EmptyDialTarget,
    #[error("SIP target must start with sip: or sips:, got {0:?}")]
    SipScheme(String),
}

/// `<Connect><Stream>`: the bidirectional media stream that carries the call to us.
///
/// `<Connect>` rather than `<Start>`: only `<Connect><Stream>` is bidirectional (with
/// `<Start>` anything we send back is ignored), only it delivers `mark` and `dtmf` events, and
/// it blocks the TwiML document until our socket closes, so the call stays with us instead of
/// running on to the next verb (or hanging up when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectStream {
    url: String,
    parameters: Vec<(String, String)>,
    action: Option<String>,
}

impl ConnectStream {
    /// `url` must be `wss://…` with no query string (Twilio does not support one).
    pub fn new(url: impl Into<String>) -> Result<Self, TwimlError> {
        let url = url.into();
        if !url.starts_with("wss://") || url.len() == "wss://".len() {
            return Err(TwimlError::StreamUrlScheme(url));
        }
        if url.contains('?') {
            return Err(TwimlError::StreamUrlQuery(url));
        }
        Ok(Self {
            url,
            parameters: Vec::new(),
            action: None,
        })
    }

    /// The stream URL for our server: `wss://{host}/twilio/stream/{token}`. The per-call
    /// token goes in the path because a query string would be dropped.
    pub fn for_host(public_host: &str, token: &str) -> Result<Self, TwimlError> {
        Self::new(format!("wss://{public_host}/twilio/stream/{token}"))
    }

    /// A `<Parameter>`; it reaches the socket in `start.customParameters`.
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    /// `<Connect action=…>`: requested when our socket closes, so the call can continue (e.g.
    /// a transfer without a REST call).
    pub fn action(mut self, url: impl Into<String>) -> Result<Self, TwimlError> {
        self.action = Some(absolute("action", url.into())?);
        Ok(self)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Where a `<Dial>` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A phone number, e.g. E.164 `+15551234567`.
    Number(String),
    /// A SIP URI, e.g. `sip:agent@pbx.example.com;transport=tls`.
    Sip(String),
}

/// `<Dial>`: hand the caller to a number or SIP endpoint (the transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    target: DialTarget,
    caller_id: Option<String>,
    timeout: Option<Duration>,
    action: Option<String>,
}

impl Dial {
    pub fn new(target: DialTarget) -> Result<Self, TwimlError> {
        match &target {
            DialTarget::Number(n) | DialTarget::Sip(n) if n.trim().is_empty() => {
                return Err(TwimlError::EmptyDialTarget);
            }
            DialTarget::Sip(uri) if !(uri.starts_with("sip:") || uri.starts_with("sips:")) => {
                return Err(TwimlError::SipScheme(uri.clone()));
            }
            _ => {}
        }
        Ok(Self {
            target,
            caller_id: None,
            timeout: None,
            action: None,
        })
    }

    pub fn caller_id(mut self, caller_id: impl Into<String>) -> Self {
        self.caller_id = Some(caller_id.into());
        self
    }

    /// Ring timeout; Twilio takes whole seconds, so it is rounded up (never to zero).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Where Twilio reports the dial outcome (must be absolute: inline TwiML has no base URL).
    pub fn action(mut self, url: impl Into<String>) -> Result<Self, TwimlError> {
        self.action = Some(absolute("action", url.into())?);
        Ok(self)
    }
}

/// `<Say>` text with an optional voice and language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    pub text: String,
    pub voice: Option<String>,
    pub language: Option<String>,
}

impl Say {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            voice: None,
            language: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Connect(ConnectStream),
    Dial(Dial),
    Say(Say),
    Hangup,
}

/// A `<Response>` document: verbs run in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    verbs: Vec<Verb>,
}

impl Response {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn connect(mut self, stream: ConnectStream) -> Self {
        self.verbs.push(Verb::Connect(stream));
        self
    }

    pub fn dial(mut self, dial: Dial) -> Self {
        self.verbs.push(Verb::Dial(dial));
        self
    }

    pub fn say(mut self, say: Say) -> Self {
        self.verbs.push(Verb::Say(say));
        self
    }

    pub fn hangup(mut self) -> Self {
        self.verbs.push(Verb::Hangup);
        self
    }

    /// The document with an XML declaration, as a webhook answer (`Content-Type: text/xml`)
    /// or as the `Twiml=` form value of a REST call update.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#);
        for verb in &self.verbs {
            write_verb(&mut out, verb);
        }
        out.push_str("</Response>");
        out
    }
}

fn write_verb(out: &mut String, verb: &Verb) {
    match verb {
        Verb::Connect(c) => {
            out.push_str("<Connect");
            attr(out, "action", c.action.as_deref());
            out.push_str("><Stream");
            attr(out, "url", Some(&c.url));
            out.push('>');
            for (name, value) in &c.parameters {
                out.push_str("<Parameter");
                attr(out, "name", Some(name));
                attr(out, "value", Some(value));
                out.push_str("/>");
            }
            out.push_str("</Stream></Connect>");
        }
        Verb::Dial(d) => {
            out.push_str("<Dial");
            attr(out, "callerId", d.caller_id.as_deref());
            if let Some(t) = d.timeout {
                let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
                attr(out, "timeout", Some(&secs.max(1).to_string()));
            }
            attr(out, "action", d.action.as_deref());
            out.push('>');
            let (tag, body) = match &d.target {
                DialTarget::Number(n) => ("Number", n),
                DialTarget::Sip(s) => ("Sip", s),
            };
            let _ = write!(out, "<{tag}>");
            text(out, body);
            let _ = write!(out, "</{tag}></Dial>");
        }
        Verb::Say(s) => {
            out.push_str("<Say");
            attr(out, "voice", s.voice.as_deref());
            attr(out, "language", s.language.as_deref());
            out.push('>');
            text(out, &s.text);
            out.push_str("</Say>");
        }
        Verb::Hangup => out.push_str("<Hangup/>"),
    }
}

fn absolute(attribute: &'static str, value: String) -> Result<String, TwimlError> {
    let ok = ["https://", "http://"]
        .iter()
        .any(|p| value.len() > p.len() && value[..p.len()].eq_ignore_ascii_case(p));
    if ok {
        Ok(value)
    } else {
        Err(TwimlError::RelativeUrl { attribute, value })
    }
}

fn attr(out: &mut String, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        let _ = write!(out, " {name}=\"");
        escape(out, value, true);
        out.push('"');
    }
}

fn text(out: &mut String, value: &str) {
    escape(out, value, false);
}

/// XML escaping. Characters XML 1.0 cannot carry at all (most C0 controls) are dropped rather
/// than producing a document Twilio rejects; in attributes, whitespace controls become
/// character references so they survive attribute-value normalisation.
fn escape(out: &mut String, value: &str, in_attribute: bool) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if in_attribute => out.push_str("&quot;"),
            '\'' if in_attribute => out.push_str("&apos;"),
            '\t' | '\n' | '\r' if in_attribute => {
                let _ = write!(out, "&#{};", c as u32);
            }
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    #[test]
    fn connect_stream_with_escaped_parameters() {
        let stream = ConnectStream::for_host("bot.example.com", "tok123")
            .unwrap()
            .parameter("From", "+15551234567")
            .parameter("note", r#"a<b & "c" 'd'>"#);
        let xml = Response::new().connect(stream).to_xml();
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Connect><Stream url=\"wss://bot.example.com/twilio/stream/tok123\">\
                 <Parameter name=\"From\" value=\"+15551234567\"/>\
                 <Parameter name=\"note\" value=\"a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\"/>\
                 </Stream></Connect></Response>"
            )
        );
    }

    #[test]
    fn stream_url_rules() {
        assert!(matches!(
            ConnectStream::new("wss://h/twilio/stream/t?token=x"),
            Err(TwimlError::StreamUrlQuery(_))
        ));
        assert!(matches!(
            ConnectStream::new("https://h/twilio/stream/t"),
            Err(TwimlError::StreamUrlScheme(_))
        ));
        let c = ConnectStream::new("wss://h/s")
            .unwrap()
            .action("https://h/after")
            .unwrap();
        assert_eq!(
            Response::new().connect(c).to_xml(),
            format!(
                "{DECL}<Response><Connect action=\"https://h/after\"><Stream url=\"wss://h/s\"></Stream></Connect></Response>"
            )
        );
    }

    #[test]
    fn dial_number_with_options() {
        let dial = Dial::new(DialTarget::Number("+15551234567".into()))
            .unwrap()
            .caller_id("+15550000000")
            .timeout(Duration::from_millis(19_500))
            .action("https://h/dial-status?call=CA1&x=y")
            .unwrap();
        assert_eq!(
            Response::new().dial(dial).to_xml(),
            format!(
                "{DECL}<Response><Dial callerId=\"+15550000000\" timeout=\"20\" \
                 action=\"https://h/dial-status?call=CA1&amp;x=y\"><Number>+15551234567</Number></Dial></Response>"
            )
        );
    }

    #[test]
    fn dial_sip_and_validation() {
        let dial = Dial::new(DialTarget::Sip(
            "sip:agent@pbx.example.com;transport=tls".into(),
        ))
        .unwrap();
        assert_eq!(
            Response::new().dial(dial).to_xml(),
            format!(
                "{DECL}<Response><Dial><Sip>sip:agent@pbx.example.com;transport=tls</Sip></Dial></Response>"
            )
        );
        assert_eq!(
            Dial::new(DialTarget::Sip("agent@pbx".into())),
            Err(TwimlError::SipScheme("agent@pbx".into()))
        );
        assert_eq!(
            Dial::new(DialTarget::Number(" ".into())),
            Err(TwimlError::EmptyDialTarget)
        );
        assert!(matches!(
            Dial::new(DialTarget::Number("+1".into()))
                .unwrap()
                .action("/relative"),
            Err(TwimlError::RelativeUrl { .. })
        ));
    }

    #[test]
    fn say_escapes_text_and_hangup() {
        let mut say = Say::new("Tom & Jerry <3\u{7}");
        say.voice = Some("alice".into());
        assert_eq!(
            Response::new().say(say).hangup().to_xml(),
            format!(
                "{DECL}<Response><Say voice=\"alice\">Tom &amp; Jerry &lt;3</Say><Hangup/></Response>"
            )
        );
    }
}

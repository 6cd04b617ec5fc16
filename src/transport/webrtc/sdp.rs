//! The few SDP facts signalling needs before handing an offer to the WebRTC stack: is it SDP
//! at all, does it carry audio, can we decode that audio, and (from our answer) which payload
//! types were agreed. Plain text scanning; the stack does the real parsing.

/// Why an offer cannot be answered. Each maps to its own HTTP status in `whip.rs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// Not SDP (400).
    #[error("not an SDP offer: {0}")]
    Malformed(String),
    /// SDP without a usable audio section (422).
    #[error("the offer has no audio section to answer")]
    NoAudio,
    /// Audio, but only in codecs we do not speak (422).
    #[error("no supported audio codec in the offer (Opus/48000 is required), offered: {0}")]
    NoSupportedCodec(String),
}

/// Checks an offer before any WebRTC state is created for it.
pub fn check_offer(sdp: &str) -> Result<(), OfferError> {
    let mut lines = sdp.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some("v=0") => {}
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            return Err(OfferError::Malformed(format!("expected \"v=0\" first, got {shown:?}")));
        }
        None => return Err(OfferError::Malformed("empty body".into())),
    }
    // One entry per m-section: the rtpmap names of a live audio section, `None` for anything
    // else (video, data, or audio rejected with port 0).
    let mut sections: Vec<Option<Vec<String>>> = Vec::new();
    for line in sdp.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((kind, value)) = line.split_once('=') else {
            let shown: String = line.chars().take(40).collect();
            return Err(OfferError::Malformed(format!("line without '=': {shown:?}")));
        };
        if kind.len() != 1 {
            return Err(OfferError::Malformed(format!("bad line type {kind:?}")));
        }
        if kind == "m" {
            let mut fields = value.split_whitespace();
            let live_audio = fields.next() == Some("audio") && fields.next().is_some_and(|port| port != "0");
            sections.push(live_audio.then(Vec::new));
        } else if let (Some(Some(codecs)), Some(rest)) = (sections.last_mut(), value.strip_prefix("rtpmap:")) {
            if kind == "a" {
                if let Some((_, name)) = rest.split_once(' ') {
                    codecs.push(name.to_ascii_lowercase());
                }
            }
        }
    }
    if sections.is_empty() {
        return Err(OfferError::Malformed("no media sections".into()));
    }
    let audio: Vec<&Vec<String>> = sections.iter().flatten().collect();
    if audio.is_empty() {
        return Err(OfferError::NoAudio);
    }
    if audio.iter().any(|codecs| codecs.iter().any(|c| c.starts_with("opus/48000"))) {
        return Ok(());
    }
    let offered: Vec<&str> = audio.iter().flat_map(|c| c.iter().map(String::as_str)).collect();
    Err(OfferError::NoSupportedCodec(offered.join(", ")))
}

/// Payload types agreed in an answer's audio section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPayloadTypes {
    pub opus: u8,
    /// RFC 4733 telephone-events at 48 kHz, when the browser offered them.
    pub telephone_event: Option<u8>,
}

/// Reads the Opus and telephone-event payload types from the first audio section of `sdp`.
pub fn audio_payload_types(sdp: &str) -> Option<AudioPayloadTypes> {
    let mut in_audio = false;
    let mut opus = None;
    let mut telephone_event = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio {
                break;
            }
            in_audio = m.starts_with("audio ");
            continue;
        }
        if !in_audio {
            continue;
        }
        let Some(rest) = line.strip_prefix("a=rtpmap:") else { continue };
        let Some((pt, name)) = rest.split_once(' ') else { continue };
        let Ok(pt) = pt.parse::<u8>() else { continue };
        let name = name.to_ascii_lowercase();
        if name.starts_with("opus/48000") && opus.is_none() {
            opus = Some(pt);
        } else if name == "telephone-event/48000" && telephone_event.is_none() {
            telephone_event = Some(pt);
        }
    }
    Some(AudioPayloadTypes { opus: opus?, telephone_event })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audio part of a Chromium offer, trimmed.
    const CHROME_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n\
a=mid:0\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n";

    #[test]
    fn a_browser_offer_passes_and_its_payload_types_are_found() {
        assert_eq!(check_offer(CHROME_OFFER), Ok(()));
        assert_eq!(
            audio_payload_types(CHROME_OFFER),
            Some(AudioPayloadTypes { opus: 111, telephone_event: Some(110) })
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(check_offer("hello"), Err(OfferError::Malformed(_))));
        assert!(matches!(check_offer(""), Err(OfferError::Malformed(_))));
        assert!(matches!(check_offer("v=0\r\nthis is not sdp\r\n"), Err(OfferError::Malformed(_))));
        assert!(matches!(check_offer("v=0\r\ns=-\r\n"), Err(OfferError::Malformed(_))));
    }

    #[test]
    fn video_only_or_rejected_audio_has_no_audio() {
        let video = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(check_offer(video), Err(OfferError::NoAudio));
        let rejected = "v=0\r\ns=-\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(check_offer(rejected), Err(OfferError::NoAudio));
    }

    #[test]
    fn audio_without_opus_is_unsupported_and_names_what_was_offered() {
        let g711 = "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";
        match check_offer(g711) {
            Err(OfferError::NoSupportedCodec(list)) => assert_eq!(list, "pcmu/8000, pcma/8000"),
            other => panic!("{other:?}"),
        }
        // Opus in a video section does not count.
        let odd = "v=0\r\ns=-\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(matches!(check_offer(odd), Err(OfferError::NoSupportedCodec(_))));
    }
}

//! End-to-end checks of the Twilio test support against the server's own wire types: the
//! test caller against a small recording WebSocket server that parses with
//! `transport::twilio::protocol`, and the REST client against the fake Twilio REST API.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::fake_twilio_rest::{CallUpdate, FakeTwilioRest};
use support::twilio_caller::{CallerConfig, FRAME_BYTES, TwilioCaller, ULAW_SILENCE};
use switchboard::transport::twilio::protocol::{
    Inbound, MediaFrameWriter, Outbound, ProtocolError, StreamSid, Track, parse_inbound,
};
use switchboard::transport::twilio::rest::{
    CallInstructions, HangupOutcome, RestError, TwilioRest, TwilioRestConfig,
};
use switchboard::transport::twilio::twiml::{Dial, DialTarget, Response};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// What the recording server saw, with arrival times.
#[derive(Debug)]
enum Seen {
    Msg(Instant, Result<Inbound, ProtocolError>),
    Closed,
}

/// A one-connection WebSocket server: everything received is parsed with the server's
/// protocol module and reported; anything pushed into the returned sender is sent.
async fn recording_server() -> (String, mpsc::Receiver<Seen>, mpsc::Sender<Message>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("ws://{}/twilio/stream/tok", listener.local_addr().unwrap());
    let (seen_tx, seen_rx) = mpsc::channel(4096);
    let (send_tx, mut send_rx) = mpsc::channel::<Message>(1024);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let ws = tokio_tungstenite::accept_async(tcp)
            .await
            .expect("handshake");
        let (mut sink, mut stream) = ws.split();
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let _ = seen_tx.send(Seen::Msg(Instant::now(), parse_inbound(t.as_str()))).await;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        let _ = seen_tx.send(Seen::Closed).await;
                        let _ = sink.close().await;
                        return;
                    }
                    Some(Ok(_)) => {}
                },
                out = send_rx.recv() => match out {
                    Some(Message::Close(_)) | None => {
                        let _ = sink.close().await;
                        // Finish the closing handshake: dropping the socket with the caller's
                        // frames unread would reset the connection, and a reset can discard
                        // the close frame before the caller reads it.
                        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
                        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                        return;
                    }
                    Some(msg) => {
                        if sink.send(msg).await.is_err() {
                            return;
                        }
                    }
                },
            }
        }
    });
    (url, seen_rx, send_tx)
}

async fn next_msg(seen: &mut mpsc::Receiver<Seen>) -> (Instant, Inbound) {
    match tokio::time::timeout(Duration::from_secs(5), seen.recv()).await {
        Ok(Some(Seen::Msg(at, Ok(msg)))) => (at, msg),
        other => panic!("expected a parsed message, got {other:?}"),
    }
}

/// Skips media frames until a non-media message arrives.
async fn next_non_media(seen: &mut mpsc::Receiver<Seen>) -> Seen {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), seen.recv()).await {
            Ok(Some(Seen::Msg(_, Ok(Inbound::Media(_))))) => continue,
            Ok(Some(other)) => return other,
            other => panic!("server saw nothing more: {other:?}"),
        }
    }
}

/// Sends `audio` as 20 ms media messages built with the server's frame writer.
async fn send_audio(to_caller: &mpsc::Sender<Message>, sid: &StreamSid, audio: &[u8]) {
    let mut writer = MediaFrameWriter::new(sid);
    for frame in audio.chunks(FRAME_BYTES) {
        to_caller
            .send(Message::text(writer.write(frame).to_owned()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn caller_speaks_the_documented_protocol_with_paced_frames() {
    let speech =
        support::speech_ulaw("hello, I would like to talk to sales").expect("espeak-ng speech");
    let (url, mut seen, _to_caller) = recording_server().await;
    let config = CallerConfig::new(&url)
        .parameter("FirstName", "Jane")
        .parameter("token", "a&b");
    let caller = TwilioCaller::connect(config.clone()).await.unwrap();
    caller.say(speech.clone()).await;

    let (_, first) = next_msg(&mut seen).await;
    let Inbound::Connected(c) = first else {
        panic!("first message was {first:?}")
    };
    assert_eq!((c.protocol.as_str(), c.version.as_str()), ("Call", "1.0.0"));
    let (_, second) = next_msg(&mut seen).await;
    let Inbound::Start(start) = second else {
        panic!("second message was {second:?}")
    };
    assert_eq!(start.sequence_number, 1);
    assert_eq!(start.stream_sid.as_str(), config.stream_sid);
    assert_eq!(start.start.call_sid.as_str(), config.call_sid);
    assert_eq!(start.start.tracks, vec![Track::Inbound]);
    assert!(start.start.media_format.is_mulaw_8k_mono());
    assert_eq!(start.start.custom_parameters["FirstName"], "Jane");
    assert_eq!(start.start.custom_parameters["token"], "a&b");

    // The speech, then silence: 1.5 s more than the speech.
    let frames_wanted = speech.len().div_ceil(FRAME_BYTES) + 75;
    let mut audio = Vec::new();
    let mut first_at = None;
    let mut last = (Instant::now(), 0u64);
    for i in 0..frames_wanted as u64 {
        let (at, msg) = next_msg(&mut seen).await;
        let Inbound::Media(m) = msg else {
            panic!("expected media, got {msg:?}")
        };
        assert_eq!(m.sequence_number, 2 + i, "sequence numbers are contiguous");
        assert_eq!(m.media.chunk, 1 + i, "chunks count from 1");
        assert_eq!(m.media.timestamp, 20 * i, "timestamps step 20 ms");
        assert_eq!(m.media.track, Track::Inbound);
        let bytes = m
            .media
            .payload
            .decode(FRAME_BYTES)
            .expect("one 20 ms frame");
        assert_eq!(bytes.len(), FRAME_BYTES);
        audio.extend(bytes);
        first_at.get_or_insert(at);
        last = (at, m.media.timestamp);
    }
    assert_eq!(
        &audio[..speech.len()],
        &speech[..],
        "speech arrives unchanged"
    );
    assert!(
        audio[speech.len()..].iter().all(|&b| b == ULAW_SILENCE),
        "then silence"
    );

    // Drift-free pacing: the wall-clock span matches the media clock. A stall may delay
    // single frames (they are then sent in a burst), but the total cannot drift.
    let span = last.0 - first_at.unwrap();
    let media_span = Duration::from_millis(last.1);
    let error = span.as_secs_f64() - media_span.as_secs_f64();
    assert!(error.abs() < 0.1, "wall {span:?} vs media {media_span:?}");

    let rec = caller.hangup().await.unwrap();
    assert!(
        rec.stop_sent && rec.violations.is_empty(),
        "{:?}",
        rec.violations
    );
    assert_eq!(
        rec.speech_frames_sent as usize,
        speech.len().div_ceil(FRAME_BYTES)
    );
}

#[tokio::test]
async fn marks_echo_after_playout_and_at_once_on_clear() {
    let (url, mut seen, to_caller) = recording_server().await;
    let config = CallerConfig::new(&url);
    let sid = StreamSid::from(config.stream_sid.as_str());
    let caller = TwilioCaller::connect(config).await.unwrap();
    next_msg(&mut seen).await; // connected
    next_msg(&mut seen).await; // start

    // No audio buffered: the mark comes straight back.
    let sent = Instant::now();
    to_caller
        .send(Message::text(Outbound::mark(&sid, "empty").to_json()))
        .await
        .unwrap();
    let Seen::Msg(at, Ok(Inbound::Mark(m))) = next_non_media(&mut seen).await else {
        panic!("expected the mark echo")
    };
    assert_eq!(m.mark.name, "empty");
    assert!(
        at - sent < Duration::from_millis(100),
        "echo took {:?}",
        at - sent
    );

    // 600 ms of audio, then a mark: echoed once the audio has played.
    let sent = Instant::now();
    send_audio(&to_caller, &sid, &vec![0x55; 4800]).await;
    to_caller
        .send(Message::text(Outbound::mark(&sid, "played").to_json()))
        .await
        .unwrap();
    let Seen::Msg(at, Ok(Inbound::Mark(m))) = next_non_media(&mut seen).await else {
        panic!("expected the mark echo")
    };
    assert_eq!(m.mark.name, "played");
    let took = at - sent;
    assert!(
        took >= Duration::from_millis(590) && took < Duration::from_millis(900),
        "mark after 600 ms of audio echoed after {took:?}"
    );

    // 2 s of audio and a mark, cleared after 300 ms: the mark comes back at once, and about
    // 1.7 s of audio is discarded.
    send_audio(&to_caller, &sid, &vec![0x55; 16_000]).await;
    to_caller
        .send(Message::text(Outbound::mark(&sid, "cut").to_json()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cleared = Instant::now();
    to_caller
        .send(Message::text(Outbound::clear(&sid).to_json()))
        .await
        .unwrap();
    let Seen::Msg(at, Ok(Inbound::Mark(m))) = next_non_media(&mut seen).await else {
        panic!("expected the mark echo")
    };
    assert_eq!(m.mark.name, "cut");
    assert!(
        at - cleared < Duration::from_millis(150),
        "echo after clear took {:?}",
        at - cleared
    );

    let rec = caller.hangup().await.unwrap();
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    let names: Vec<_> = rec
        .echoed_marks
        .iter()
        .map(|m| (m.name.as_str(), m.cleared))
        .collect();
    assert_eq!(names, [("empty", false), ("played", false), ("cut", true)]);
    assert_eq!(rec.marks_received(), ["empty", "played", "cut"]);
    assert_eq!(rec.clears_received(), 1);
    assert_eq!(rec.received_audio().len(), 4800 + 16_000);
    // Discarded ≈ 2 s − 0.3 s, give or take scheduling on a busy machine.
    let discarded_s = rec.discarded_bytes as f64 / 8000.0;
    assert!(
        (1.5..1.75).contains(&discarded_s),
        "discarded {discarded_s} s"
    );
}

#[tokio::test]
async fn dtmf_then_stop_then_close() {
    let (url, mut seen, _to_caller) = recording_server().await;
    let config = CallerConfig::new(&url);
    let caller = TwilioCaller::connect(config.clone()).await.unwrap();
    caller.dtmf('5').await;
    caller.dtmf('#').await;
    let rec = caller.hangup().await.unwrap();
    assert_eq!(rec.dtmf_sent, ['5', '#']);

    let mut non_media = Vec::new();
    loop {
        match next_non_media(&mut seen).await {
            Seen::Closed => break,
            Seen::Msg(_, msg) => non_media.push(msg.expect("parses")),
        }
    }
    let digits: Vec<char> = non_media
        .iter()
        .filter_map(|m| match m {
            Inbound::Dtmf(d) => {
                assert_eq!(d.dtmf.track, "inbound_track");
                Some(d.dtmf.digit)
            }
            _ => None,
        })
        .collect();
    assert_eq!(digits, ['5', '#']);
    let Some(Inbound::Stop(stop)) = non_media.last() else {
        panic!("last message before close was not stop: {non_media:?}")
    };
    assert_eq!(stop.stop.call_sid.as_str(), config.call_sid);
    assert_eq!(stop.stop.account_sid.as_str(), config.account_sid);
    // Sequence numbers stay contiguous across message kinds.
    let seqs: Vec<u64> = non_media
        .iter()
        .filter_map(Inbound::sequence_number)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn caller_flags_what_twilio_would_reject_and_sees_server_close() {
    let (url, mut seen, to_caller) = recording_server().await;
    let config = CallerConfig::new(&url);
    let caller = TwilioCaller::connect(config.clone()).await.unwrap();
    next_msg(&mut seen).await;
    next_msg(&mut seen).await;
    let good = StreamSid::from(config.stream_sid.as_str());
    let wrong = StreamSid::from("MZwrong");
    to_caller
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    to_caller
        .send(Message::text(Outbound::clear(&wrong).to_json()))
        .await
        .unwrap();
    let extra =
        r#"{"event":"media","streamSid":"SID","media":{"payload":"AAAA","track":"outbound"}}"#;
    to_caller
        .send(Message::text(extra.replace("SID", good.as_str())))
        .await
        .unwrap();
    to_caller
        .send(Message::text(r#"{"event":"dance"}"#))
        .await
        .unwrap();
    to_caller
        .send(Message::text(Outbound::clear(&good).to_json()))
        .await
        .unwrap();
    to_caller.send(Message::Close(None)).await.unwrap();

    let rec = caller.wait_closed(Duration::from_secs(5)).await.unwrap();
    assert!(rec.closed_by_server && !rec.stop_sent);
    assert_eq!(rec.violations.len(), 4, "{:#?}", rec.violations);
    assert!(rec.violations[0].starts_with("31950"));
    assert!(rec.violations[1].contains("wrong streamSid"));
    assert!(rec.violations[2].contains("media.media: fields"));
    assert!(rec.violations[3].contains("unknown event"));
    assert_eq!(rec.clears_received(), 1, "only the valid clear counts");
}

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-token";

async fn rest_client(fake: &FakeTwilioRest, token: &str) -> TwilioRest {
    let mut config = TwilioRestConfig::new(AC, token);
    config.base_url = format!("{}/", fake.base_url());
    config.timeout = Duration::from_secs(5);
    TwilioRest::new(config).unwrap()
}

#[tokio::test]
async fn rest_hangup_is_idempotent_and_20404_is_already_gone() {
    let fake = FakeTwilioRest::start(AC, TOKEN).await.unwrap();
    let call = "CA11111111111111111111111111111111";
    fake.add_call(call, "+15550001111", "+15550002222");
    let mut updates = fake.subscribe();
    let rest = rest_client(&fake, TOKEN).await;

    let outcome = rest.hangup(&call.into()).await.unwrap();
    assert_eq!(
        outcome,
        HangupOutcome::Completed {
            status: "completed".into()
        }
    );
    assert_eq!(fake.call(call).unwrap().status, "completed");
    assert_eq!(
        updates.recv().await.unwrap(),
        CallUpdate::Ended {
            sid: call.into(),
            status: "completed".into()
        }
    );
    let req = &fake.requests()[0];
    assert!(req.authorized);
    assert_eq!(
        req.path,
        format!("/2010-04-01/Accounts/{AC}/Calls/{call}.json")
    );
    assert_eq!(req.form, [("Status".to_owned(), "completed".to_owned())]);

    let unknown = "CA99999999999999999999999999999999";
    assert_eq!(
        rest.hangup(&unknown.into()).await.unwrap(),
        HangupOutcome::AlreadyGone
    );
    let err = rest
        .update_twiml(&unknown.into(), "<Response/>")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.code(), Some(20404));
}

#[tokio::test]
async fn rest_transfer_sends_the_twiml_and_create_call_works() {
    let fake = FakeTwilioRest::start(AC, TOKEN).await.unwrap();
    let call = "CA22222222222222222222222222222222";
    fake.add_call(call, "+15550001111", "+15550002222");
    let mut updates = fake.subscribe();
    let rest = rest_client(&fake, TOKEN).await;

    let dial = Dial::new(DialTarget::Number("+15551234567".into()))
        .unwrap()
        .caller_id("+15550002222")
        .timeout(Duration::from_secs(20));
    let twiml = Response::new().dial(dial).to_xml();
    let resource = rest.update_twiml(&call.into(), &twiml).await.unwrap();
    assert_eq!(resource.sid.as_str(), call);
    assert_eq!(resource.status, "in-progress");
    // The form encoding round-trips the XML exactly.
    assert_eq!(fake.requests()[0].param("Twiml"), Some(twiml.as_str()));
    assert_eq!(
        updates.recv().await.unwrap(),
        CallUpdate::Redirected {
            sid: call.into(),
            twiml: Some(twiml.clone()),
            url: None
        }
    );

    // After a hang-up, a redirect is refused with Twilio's error, carried typed.
    rest.hangup(&call.into()).await.unwrap();
    match rest.update_twiml(&call.into(), &twiml).await {
        Err(RestError::Api {
            status: 400,
            code: Some(21220),
            message,
            ..
        }) => {
            assert!(message.contains("not in-progress"), "{message}");
        }
        other => panic!("expected 21220, got {other:?}"),
    }

    let created = rest
        .create_call(
            "+15553334444",
            "+15550002222",
            &CallInstructions::Url("https://h/voice".into()),
        )
        .await
        .unwrap();
    assert_eq!(created.status, "queued");
    assert_eq!(created.to.as_deref(), Some("+15553334444"));
    let fake_call = fake
        .call(created.sid.as_str())
        .expect("fake knows the new call");
    assert_eq!(fake_call.url.as_deref(), Some("https://h/voice"));
}

#[tokio::test]
async fn rest_bad_credentials_are_a_typed_401() {
    let fake = FakeTwilioRest::start(AC, TOKEN).await.unwrap();
    let call = "CA33333333333333333333333333333333";
    fake.add_call(call, "+15550001111", "+15550002222");
    let rest = rest_client(&fake, "wrong-token").await;
    match rest.hangup(&call.into()).await {
        Err(RestError::Api {
            status: 401,
            code: Some(20003),
            ..
        }) => {}
        other => panic!("expected 401/20003, got {other:?}"),
    }
    assert_eq!(
        fake.call(call).unwrap().status,
        "in-progress",
        "nothing changed"
    );
    assert!(!fake.requests()[0].authorized);
}

/// The caller's clock is tokio's, so a paused-clock test streams minutes of audio in
/// moments of wall time, with the media clock still exact.
#[tokio::test(start_paused = true)]
async fn caller_runs_on_a_paused_clock() {
    let (url, mut seen, _to_caller) = recording_server().await;
    let caller = TwilioCaller::connect(CallerConfig::new(&url))
        .await
        .unwrap();
    caller.say(vec![0x11; FRAME_BYTES * 3000]).await; // 60 s of "speech"
    let wall = std::time::Instant::now();
    let started = Instant::now();
    let rec = caller
        .wait_speech_sent(Duration::from_secs(120))
        .await
        .unwrap();
    let virtual_elapsed = Instant::now() - started;
    assert!(rec.speech_frames_sent >= 3000, "{}", rec.speech_frames_sent);
    assert!(
        virtual_elapsed >= Duration::from_secs(59) && virtual_elapsed < Duration::from_secs(62),
        "60 s of frames took {virtual_elapsed:?} of tokio time"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(30),
        "paused clock did not advance on its own"
    );
    next_msg(&mut seen).await;
    next_msg(&mut seen).await;
    let (_, msg) = next_msg(&mut seen).await;
    assert!(matches!(msg, Inbound::Media(m) if m.media.chunk == 1));
    caller.hangup().await.unwrap();
}

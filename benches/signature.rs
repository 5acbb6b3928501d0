//! Standard Webhooks signatures over a 1 KiB body: `v1` (HMAC-SHA256, the
//! baseline, measured in the same run) against `v1a` (ed25519), signing as
//! a webhook does per attempt and verifying as a receiver does per request
//! (`Verifier::verify_at`, no replay guard).
//!
//! `cargo bench --bench signature`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hookbus::signature::{Secret, SignRequest, SignatureScheme, StandardWebhooks};
use hookbus::verify::Verifier;

const NOW: i64 = 1_700_000_000;

fn signatures(c: &mut Criterion) {
    let body = vec![b'x'; 1024];
    let request = SignRequest {
        id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        timestamp: NOW,
        body: &body,
    };
    let scheme = SignatureScheme::standard_webhooks();
    let whsec = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let (whsk, whpk) = StandardWebhooks::keypair_from_seed([7; 32]);
    let mut g = c.benchmark_group("standard_webhooks_1k");
    for (name, signing, verifying) in [
        ("v1_hmac", whsec.clone(), whsec),
        ("v1a_ed25519", whsk, Secret::new(whpk)),
    ] {
        let keys = [signing];
        g.bench_function(format!("{name}/sign"), |b| {
            b.iter(|| black_box(scheme.sign(&keys, &request).unwrap()))
        });
        let headers = scheme.sign(&keys, &request).unwrap();
        let verifier = Verifier::new(scheme.clone(), verifying).unwrap();
        g.bench_function(format!("{name}/verify"), |b| {
            b.iter(|| black_box(verifier.verify_at(&headers, &body, NOW).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, signatures);
criterion_main!(benches);

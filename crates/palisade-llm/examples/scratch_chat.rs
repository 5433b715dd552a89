use palisade_llm::local::{LocalConfig, LocalProvider};
use palisade_llm::{CancellationToken, ChatMessage, ChatProvider, ChatRequest, collect};
#[tokio::main(flavor = "current_thread")]
async fn main() {
    for rp in [1.0f32, 1.1] {
        let config = LocalConfig {
            repeat_penalty: rp,
            ..LocalConfig::default()
        };
        let p = LocalProvider::load(&config).unwrap();
        for sys in [
            "",
            "You are a helpful assistant.",
            "You are a helpful assistant. Answer briefly.",
            "You are a careful, helpful assistant. Answer questions accurately and concisely.",
        ] {
            let q = "What is the capital of France?";
            let mut m = vec![];
            if !sys.is_empty() {
                m.push(ChatMessage::system(sys));
            }
            m.push(ChatMessage::user(q));
            let r = ChatRequest {
                max_tokens: Some(40),
                temperature: Some(0.0),
                ..ChatRequest::new(m)
            };
            let c = collect(p.stream(r, CancellationToken::new()).await.unwrap()).await;
            println!("rp={rp} sys={sys:?} => {:?} {:?}", c.text, c.finish_reason);
        }
    }
}

//! Delivery of PII block alerts to an optional webhook (`CUSTOS_ALERT_WEBHOOK`).

use custos_core::{AlertSink, PiiAlert};

/// POSTs each alert as JSON to a URL, in the background, best effort.
///
/// Delivery never blocks or fails the request that raised the alert: the refusal itself is
/// already in the audit log and the security log, which are the durable record.
pub struct WebhookSink {
    url: String,
    client: reqwest::Client,
}

impl WebhookSink {
    /// A sink posting to `url` (http or https).
    pub fn new(url: String) -> Result<Self, crate::Failure> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(crate::Failure::BadInput(format!(
                "CUSTOS_ALERT_WEBHOOK {url:?}: expected an http:// or https:// URL"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| crate::Failure::Failed(format!("webhook client: {e}")))?;
        Ok(WebhookSink { url, client })
    }
}

impl AlertSink for WebhookSink {
    fn alert(&self, alert: &PiiAlert) {
        let body = serde_json::json!({ "type": "pii.blocked", "alert": alert });
        let request = self.client.post(&self.url).json(&body);
        tokio::spawn(async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    "alert webhook refused the alert"
                ),
                Err(e) => tracing::warn!(error = %e, "alert webhook unreachable"),
            }
        });
    }
}

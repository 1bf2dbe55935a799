//! The conformance suite (crates/testkit/src/conformance) against
//! `gluefleet-salesforce`: the Salesforce double as the org, signed in to
//! with the JWT bearer flow, behind the suite's fault proxy (the double's
//! `instance_url` is the proxy, so API calls and token requests both go
//! through it).

use gluefleet_testkit::TestkitError;
use gluefleet_testkit::conformance::{Batch, FaultProxy, Subject, json};
use gluefleet_testkit::http_target::LoggedRequest;
use gluefleet_testkit::salesforce::{
    SalesforceConfig, SalesforceDouble, TEST_AUDIENCE, TEST_PRIVATE_KEY_PEM,
};

/// The name a validation rule of the double refuses, record by record.
const REFUSED_NAME: &str = "refused by a validation rule";

struct Salesforce {
    double: SalesforceDouble,
}

impl Subject for Salesforce {
    const CONNECTOR: &'static str = "salesforce";

    async fn start(front: String) -> Result<(Self, String), TestkitError> {
        let double = SalesforceDouble::start(SalesforceConfig {
            instance_url: Some(front),
            ..SalesforceConfig::default()
        })
        .await?;
        double.fail_record_when(|record| {
            (record["Name"] == REFUSED_NAME).then(|| {
                (
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION".to_owned(),
                    "refused by the conformance suite".to_owned(),
                    vec!["Name".to_owned()],
                )
            })
        });
        let upstream = double.url();
        Ok((Self { double }, upstream))
    }

    fn target(&self, front: &FaultProxy) -> String {
        let defaults = SalesforceConfig::default();
        format!(
            r#"
[auth]
kind = "jwt_bearer"
login_url = "{front}"
# The assertion is for the org, not for the proxy in front of it.
audience = "{audience}"
consumer_key = "{key}"
username = "{user}"
private_key = "${{SALESFORCE_PRIVATE_KEY}}"

[target]
linger = "300ms"
"#,
            front = front.url(),
            key = defaults.consumer_key,
            user = defaults.username,
            audience = TEST_AUDIENCE,
        )
    }

    fn action(&self) -> String {
        r#"{ operation = "upsert", sobject = "Account", external_id_field = "External_Id__c", external_id = "{data.id}", fields = "{Name: .data.name}" }"#.to_owned()
    }

    fn env(&self, _front: &FaultProxy) -> Vec<(String, String)> {
        vec![(
            "SALESFORCE_PRIVATE_KEY".to_owned(),
            TEST_PRIVATE_KEY_PEM.to_owned(),
        )]
    }

    /// API calls under `/services/data/`; the token endpoint and the
    /// versions list pass.
    fn is_call(request: &LoggedRequest) -> bool {
        request.method != "GET" && request.path.contains("/services/data/v")
    }

    /// Calls the org answered 2xx that carried the record (single upserts
    /// name it in the path, Collections calls in the body).
    async fn effects(&self, tag: &str, front: &FaultProxy) -> usize {
        let stored = self.double.record("Account", tag).is_some();
        let calls = front
            .calls()
            .iter()
            .filter(|p| p.applied() && p.mentions(tag))
            .count();
        if stored { calls } else { 0 }
    }

    fn refreshes(&self) -> Option<usize> {
        usize::try_from(self.double.token_calls()).ok()
    }

    fn batch(&self) -> Option<Batch> {
        Some(Batch {
            action: self.action(),
            refused_action: None,
            refused: |tag| json!({"id": tag, "name": REFUSED_NAME}),
        })
    }
}

gluefleet_testkit::conformance_suite!(Salesforce);

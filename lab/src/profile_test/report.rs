//! The report: everything the run learnt and every finding, as JSON (serde) and as text.

use std::io::Write;

use ca_api::template::TemplateInfo;
use foundation::names::subject_text;
use policy_module::intune::Unmodelled;
use policy_module::model::{DeviceSpec, ProfileSpec};
use policy_module::render::Expected;
use policy_module::template_check::ProfileWarning;
use serde::Serialize;

use super::exposure::exposures;
use super::findings::{Finding, Section, Severity, analyse, eku_text, san_text};
use super::require::{Requirement, RequirementResult, check, finding};
use super::runner::{Issued, Outcome};
use ca_api::wire::LintViolation;

/// The whole report (`--json` writes it as is).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// RFC 3339.
    pub generated_at: String,
    /// Unix seconds.
    pub generated_at_unix: i64,
    /// `ephemeral`, or the running lab's policy-module URL.
    pub lab: String,
    /// The profile tested.
    pub profile: ProfilePart,
    /// The synthetic device.
    pub device: DevicePart,
    /// The CA template as the CA describes it.
    pub template: Option<TemplateInfo>,
    /// Why the template could not be read.
    pub template_error: Option<String>,
    /// What the profile renders for the device.
    pub rendering: Rendering,
    /// The certificate and its chain, when one was issued.
    pub certificate: Option<Issued>,
    /// Why there is none.
    pub enrollment_error: Option<String>,
    /// The CA's RFC 5280 lint (absent when no certificate was issued or it was unreadable).
    pub lint: Option<Vec<LintViolation>>,
    /// `--require` results.
    pub requirements: Vec<RequirementResult>,
    /// Every finding, most severe first.
    pub findings: Vec<Finding>,
    /// The `--fail-on` threshold.
    pub fail_on: Severity,
    /// `pass` or `fail`.
    pub verdict: String,
}

/// The profile part.
#[derive(Debug, Clone, Serialize)]
pub struct ProfilePart {
    /// The copy created for the test.
    pub id: String,
    /// Where the settings came from.
    pub source: String,
    /// The settings.
    pub settings: ProfileSpec,
    /// Properties of an imported Intune document not carried into the settings.
    pub unmodelled: Vec<Unmodelled>,
}

/// The device part.
#[derive(Debug, Clone, Serialize)]
pub struct DevicePart {
    /// Its id in the lab.
    pub id: String,
    /// Its attributes.
    pub attributes: DeviceSpec,
}

/// The rendering part.
#[derive(Debug, Clone, Serialize)]
pub struct Rendering {
    /// The subject on one line.
    pub subject: Option<String>,
    /// `kind:value`.
    pub sans: Vec<String>,
    /// Everything the policy module expects of the device's CSR.
    pub expected: Option<Expected>,
    /// Why the profile does not render.
    pub error: Option<String>,
    /// The policy module's profile-versus-template warnings.
    pub warnings: Vec<ProfileWarning>,
}

impl Report {
    /// Analyses `o`.
    pub fn new(o: Outcome, lab: &str, requires: &[Requirement], fail_on: Severity) -> Self {
        let mut findings = analyse(&o);
        let cert = o.enrollment.as_ref().ok().map(|i| &i.cert);
        match &o.template {
            Ok(t) => findings.extend(exposures(t, cert)),
            Err(why) => findings.push(Finding::new(
                "run.template",
                Section::Run,
                Severity::Medium,
                format!("template not read, exposures not assessed: {why}"),
            )),
        }
        let requirements: Vec<RequirementResult> =
            requires.iter().map(|r| check(*r, cert)).collect();
        findings.extend(requirements.iter().filter_map(finding));
        if !o.unmodelled.is_empty() {
            let names: Vec<&str> = o.unmodelled.iter().map(|u| u.property.as_str()).collect();
            findings.push(Finding::new(
                "import.unmodelled",
                Section::Run,
                Severity::Info,
                format!(
                    "Intune properties the lab does not model: {}",
                    names.join(", ")
                ),
            ));
        }
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let failed = findings.iter().any(|f| f.severity >= fail_on);
        let now = foundation::clock::unix_now();
        let (template, template_error) = match o.template {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        };
        let (certificate, enrollment_error) = match o.enrollment {
            Ok(i) => (Some(i), None),
            Err(e) => (None, Some(e)),
        };
        Self {
            generated_at: foundation::time::rfc3339(now),
            generated_at_unix: now,
            lab: lab.to_owned(),
            profile: ProfilePart {
                id: o.profile_id,
                source: o.source,
                settings: o.spec,
                unmodelled: o.unmodelled,
            },
            device: DevicePart {
                id: o.device_id,
                attributes: o.device,
            },
            template,
            template_error,
            rendering: Rendering {
                subject: o.rendered.as_ref().map(|r| subject_text(&r.subject)),
                sans: o
                    .rendered
                    .as_ref()
                    .map(|r| r.subject_alternative_names.iter().map(san_text).collect())
                    .unwrap_or_default(),
                expected: o.rendered,
                error: o.render_error,
                warnings: o.warnings,
            },
            certificate,
            enrollment_error,
            lint: o.lint.and_then(Result::ok),
            requirements,
            findings,
            fail_on,
            verdict: if failed { "fail" } else { "pass" }.into(),
        }
    }

    /// No finding at or above `--fail-on`.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// The report as text.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let p = &self.profile.settings;
        writeln!(
            out,
            "scep-lab profile test: {} ({})",
            p.name, self.profile.source
        )?;
        writeln!(
            out,
            "  lab {}, profile copy {}, template {}, device {} ({})",
            self.lab, self.profile.id, p.template, self.device.attributes.name, self.device.id
        )?;
        writeln!(out, "\nRendering")?;
        match (&self.rendering.subject, &self.rendering.error) {
            (Some(s), _) => {
                writeln!(out, "  subject  {s}")?;
                writeln!(out, "  SANs     {}", none_or(&self.rendering.sans))?;
            }
            (None, Some(e)) => writeln!(out, "  does not render: {e}")?,
            (None, None) => writeln!(out, "  not rendered")?,
        }
        for w in &self.rendering.warnings {
            writeln!(out, "  template differs on {}: {}", w.field, w.effect)?;
        }
        writeln!(out, "\nCertificate")?;
        match (&self.certificate, &self.enrollment_error) {
            (Some(i), _) => write_cert(out, i)?,
            (None, Some(e)) => writeln!(out, "  none issued: {e}")?,
            (None, None) => writeln!(out, "  none issued")?,
        }
        writeln!(out, "\nLint (ca-mock, RFC 5280)")?;
        match &self.lint {
            Some(v) if v.is_empty() => writeln!(out, "  clean")?,
            Some(v) => {
                for l in v {
                    writeln!(out, "  {}: {}", l.check, l.detail)?;
                }
            }
            None => writeln!(out, "  not run")?,
        }
        if !self.requirements.is_empty() {
            writeln!(out, "\nRequirements")?;
            for r in &self.requirements {
                let state = if r.met { "met" } else { "NOT MET" };
                write!(out, "  {:<8} {state}", r.requirement.name())?;
                if !r.reasons.is_empty() {
                    write!(out, ": {}", r.reasons.join("; "))?;
                }
                writeln!(out)?;
            }
        }
        writeln!(out, "\nFindings ({})", self.findings.len())?;
        for f in &self.findings {
            writeln!(
                out,
                "  [{:<6}] {:<28} {}",
                f.severity.as_str(),
                f.id,
                f.detail
            )?;
        }
        writeln!(
            out,
            "\nverdict: {} (fail on {} and above)",
            self.verdict.to_uppercase(),
            self.fail_on.as_str()
        )
    }
}

fn none_or(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn write_cert(out: &mut impl Write, i: &Issued) -> std::io::Result<()> {
    let c = &i.cert;
    writeln!(out, "  serial     {}", c.serial)?;
    writeln!(out, "  subject    {}", c.subject_text)?;
    let sans: Vec<String> = c
        .sans
        .iter()
        .map(san_text)
        .chain(c.other_sans.clone())
        .collect();
    writeln!(out, "  SANs       {}", none_or(&sans))?;
    writeln!(out, "  issuer     {}", c.issuer_text)?;
    writeln!(
        out,
        "  validity   {} to {} ({} days)",
        c.not_before, c.not_after, c.validity_days
    )?;
    let curve = c
        .curve
        .as_deref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    writeln!(
        out,
        "  key        {} {} bits{curve}",
        c.key_algorithm, c.key_bits
    )?;
    writeln!(out, "  signature  {}", c.signature_algorithm)?;
    writeln!(out, "  key usage  {}", none_or(&c.key_usage))?;
    let ekus: Vec<String> = c.extended_key_usage.iter().map(|e| eku_text(e)).collect();
    writeln!(
        out,
        "  EKU        {}",
        if c.eku_present {
            none_or(&ekus)
        } else {
            "(no extension: any purpose)".into()
        }
    )?;
    writeln!(out, "  SHA-256    {}", c.sha256)?;
    for (n, ca) in i.chain.iter().enumerate() {
        writeln!(
            out,
            "  chain[{}]   {} (until {})",
            n + 1,
            ca.subject_text,
            ca.not_after
        )?;
    }
    match &i.chain_verified {
        Ok(()) => writeln!(out, "  chain verifies to its root"),
        Err(e) => writeln!(out, "  chain does NOT verify: {e}"),
    }
}

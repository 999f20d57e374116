//! `handler leads export`: every lead as CSV or JSON for a CRM import. One row type, serialised
//! by both writers, so the two formats cannot drift apart.

use std::io::Write;

use chrono::SecondsFormat;
use serde::Serialize;

use super::query::StoredLead;

/// One exported lead. Column names and order are the export format (documented in the README).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    pub created_time: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub source: Option<String>,
    pub action_code: Option<String>,
    pub offer_id: Option<String>,
    pub offer_title: Option<String>,
    pub description: Option<String>,
    pub lead_source: Option<String>,
    pub is_test: bool,
    pub do_not_contact: bool,
    pub partition_key: String,
    pub row_key: String,
}

impl ExportRow {
    pub fn new(l: &StoredLead) -> Self {
        let lead = &l.lead;
        let c = &lead.contact;
        ExportRow {
            created_time: lead.created.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            country: c.country.clone(),
            company: c.company.clone(),
            title: c.title.clone(),
            source: lead.lead_source.source.clone(),
            action_code: lead.action_code.clone(),
            offer_id: lead.lead_source.offer.clone(),
            offer_title: lead.offer_title.clone(),
            description: lead.description.clone(),
            lead_source: Some(lead.lead_source.raw.clone()).filter(|s| !s.is_empty()),
            is_test: lead.is_test(),
            do_not_contact: lead.is_do_not_contact(),
            partition_key: l.partition_key.clone(),
            row_key: l.row_key.clone(),
        }
    }

    /// The same row with every text cell made formula-safe for spreadsheets.
    fn csv_safe(mut self) -> Self {
        for cell in [
            &mut self.first_name,
            &mut self.last_name,
            &mut self.email,
            &mut self.phone,
            &mut self.country,
            &mut self.company,
            &mut self.title,
            &mut self.source,
            &mut self.action_code,
            &mut self.offer_id,
            &mut self.offer_title,
            &mut self.description,
            &mut self.lead_source,
        ] {
            *cell = cell.take().map(csv_safe);
        }
        self
    }
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula: customer text
/// must not. A leading apostrophe is how spreadsheets mark "this is text". Phone numbers like
/// "+420 …" are data, not formulas, but a spreadsheet cannot tell.
fn csv_safe(v: String) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v
    }
}

/// A whole export of `leads` as CSV (the inbox's download; the command streams page by page).
pub fn write_csv(leads: &[StoredLead], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut w = ExportWriter::new(ExportFormat::Csv, out)?;
    w.write(leads)?;
    w.finish().map(|_| ())
}

/// A whole export of `leads` as a JSON array.
pub fn write_json(leads: &[StoredLead], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut w = ExportWriter::new(ExportFormat::Json, out)?;
    w.write(leads)?;
    w.finish().map(|_| ())
}

/// Writes an export as it is read, page by page (memory flat in the table's size): CSV rows, or
/// the elements of one JSON array. Rows come in the table's key order.
pub struct ExportWriter<'a> {
    format: ExportFormat,
    csv: Option<csv::Writer<&'a mut dyn Write>>,
    json: Option<&'a mut dyn Write>,
    written: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl<'a> ExportWriter<'a> {
    pub fn new(format: ExportFormat, out: &'a mut dyn Write) -> anyhow::Result<Self> {
        Ok(match format {
            ExportFormat::Csv => {
                let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(out);
                // The header first, so an empty export still has it (serde would write it with
                // the first row only).
                w.write_record(csv_header())?;
                ExportWriter { format, csv: Some(w), json: None, written: 0 }
            }
            ExportFormat::Json => {
                write!(out, "[")?;
                ExportWriter { format, csv: None, json: Some(out), written: 0 }
            }
        })
    }

    pub fn write(&mut self, leads: &[StoredLead]) -> anyhow::Result<()> {
        for l in leads {
            let row = ExportRow::new(l);
            match (self.format, &mut self.csv, &mut self.json) {
                (ExportFormat::Csv, Some(w), _) => w.serialize(row.csv_safe())?,
                (ExportFormat::Json, _, Some(out)) => {
                    let sep = if self.written == 0 { "\n" } else { ",\n" };
                    write!(out, "{sep}")?;
                    serde_json::to_writer_pretty(&mut **out, &row)?;
                }
                _ => {}
            }
            self.written += 1;
        }
        Ok(())
    }

    /// Ends the export; the number of leads written.
    pub fn finish(self) -> anyhow::Result<usize> {
        if let Some(mut w) = self.csv {
            w.flush()?;
        }
        if let Some(out) = self.json {
            writeln!(out, "{}]", if self.written == 0 { "" } else { "\n" })?;
            out.flush()?;
        }
        Ok(self.written)
    }
}

/// The column names, in order, as the serialised row has them.
fn csv_header() -> Vec<String> {
    let probe = ExportRow::default();
    match serde_json::to_value(probe) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_cannot_be_formulas() {
        assert_eq!(csv_safe("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_safe("Jana".into()), "Jana");
    }

    #[test]
    fn empty_csv_export_has_the_header() {
        let mut out = Vec::new();
        write_csv(&[], &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().trim(), "createdTime,firstName,lastName,email,phone,country,company,title,source,actionCode,offerId,offerTitle,description,leadSource,isTest,doNotContact,partitionKey,rowKey");
    }
}

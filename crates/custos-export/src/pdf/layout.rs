//! Lines of monospaced text flowed onto pages: wrapping, page breaks and page footers.
//!
//! Courier is used throughout because every glyph is 0.6 em wide, so a line's width is its
//! character count: wrapping is exact without shipping font metrics, and the summary table's
//! columns line up.

use std::io::Write;

use pdf_writer::{Content, Name, Str};

use super::file::{Info, PdfFile, FONT_BOLD, FONT_REGULAR, PAGE_HEIGHT, PAGE_WIDTH};
use super::winansi;
use crate::ExportError;

const MARGIN_X: f32 = 50.0;
const MARGIN_TOP: f32 = 56.0;
const MARGIN_BOTTOM: f32 = 60.0;
/// Baseline of the footer line.
const FOOTER_Y: f32 = 30.0;
/// Courier advance width per point of font size.
const CHAR_WIDTH: f32 = 0.6;
/// Line height per point of font size.
const LEADING: f32 = 1.25;

/// Body text size in points.
pub(crate) const BODY: f32 = 9.0;

/// A font and size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    bold: bool,
    size: f32,
}

impl Style {
    /// Body text.
    pub(crate) const BODY: Style = Style {
        bold: false,
        size: BODY,
    };
    /// Emphasized body text (record ids, table header).
    pub(crate) const STRONG: Style = Style {
        bold: true,
        size: BODY,
    };
    /// Category headings.
    pub(crate) const HEADING: Style = Style {
        bold: true,
        size: 12.0,
    };
    /// Section headings.
    pub(crate) const SECTION: Style = Style {
        bold: true,
        size: 14.0,
    };
    /// The document title.
    pub(crate) const TITLE: Style = Style {
        bold: true,
        size: 18.0,
    };

    fn line_height(self) -> f32 {
        self.size * LEADING
    }
}

/// Characters of `style` that fit on one line.
pub(crate) fn line_chars(style: Style) -> usize {
    ((PAGE_WIDTH - 2.0 * MARGIN_X) / (CHAR_WIDTH * style.size)) as usize
}

/// Splits `text` into lines of at most `width` characters after sanitizing it for WinAnsi:
/// at newlines, then at spaces, breaking words longer than a line. A wrapped line keeps the
/// leading indentation of its source line (so pretty-printed JSON stays readable).
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines = Vec::new();
    for raw in text.split('\n') {
        let line = winansi::sanitize(raw.strip_suffix('\r').unwrap_or(raw));
        let body = line.trim_start_matches(' ');
        if body.is_empty() {
            lines.push(String::new());
            continue;
        }
        // Deep indentation would leave no room: cap it at half a line. Continuations of an
        // indented line (nested JSON) hang two further in; prose continues flush.
        let depth = (line.len() - body.len()).min(width / 2);
        let indent = " ".repeat(depth);
        let hanging = if depth > 0 {
            format!("{indent}  ")
        } else {
            indent.clone()
        };
        let options = textwrap::Options::new(width)
            .initial_indent(&indent)
            .subsequent_indent(&hanging)
            .break_words(true);
        lines.extend(
            textwrap::wrap(body, options)
                .into_iter()
                .map(|l| l.into_owned()),
        );
    }
    lines
}

/// Flows lines onto pages of a [`PdfFile`].
pub(crate) struct Layout<W: Write> {
    file: PdfFile<W>,
    /// Content of the page being filled, if one is open.
    page: Option<Content>,
    /// Baseline of the next line on the open page.
    y: f32,
    footer: String,
}

impl<W: Write> Layout<W> {
    /// Starts a document whose pages carry `footer` and a page number.
    pub(crate) fn new(out: W, footer: &str) -> Result<Self, ExportError> {
        Ok(Self {
            file: PdfFile::new(out)?,
            page: None,
            y: 0.0,
            footer: winansi::sanitize(footer),
        })
    }

    fn close_page(&mut self) -> Result<(), ExportError> {
        if let Some(mut content) = self.page.take() {
            let number = self.file.page_count() + 1;
            let footer = format!("{} - page {number}", self.footer);
            let width = line_chars(Style {
                bold: false,
                size: 7.0,
            });
            let footer: String = footer.chars().take(width).collect();
            show(
                &mut content,
                Style {
                    bold: false,
                    size: 7.0,
                },
                MARGIN_X,
                FOOTER_Y,
                &footer,
            );
            self.file.add_page(content)?;
        }
        Ok(())
    }

    /// Makes sure `height` points are left on the page, starting a new page if not.
    pub(crate) fn ensure(&mut self, height: f32) -> Result<(), ExportError> {
        if self.page.is_some() && self.y - height < MARGIN_BOTTOM {
            self.close_page()?;
        }
        if self.page.is_none() {
            self.page = Some(Content::new());
            self.y = PAGE_HEIGHT - MARGIN_TOP;
        }
        Ok(())
    }

    /// Vertical space of `lines` body lines (skipped at the top of a page).
    pub(crate) fn space(&mut self, lines: f32) {
        if self.page.is_some() && self.y < PAGE_HEIGHT - MARGIN_TOP {
            self.y -= lines * Style::BODY.line_height();
        }
    }

    /// One line that already fits (see [`wrap`]), `indent` characters of body text in.
    pub(crate) fn line(
        &mut self,
        style: Style,
        indent: usize,
        text: &str,
    ) -> Result<(), ExportError> {
        self.ensure(style.line_height())?;
        let x = MARGIN_X + indent as f32 * CHAR_WIDTH * BODY;
        // The baseline sits one font size below the top of the line box.
        let baseline = self.y - style.size;
        if let Some(content) = self.page.as_mut() {
            show(content, style, x, baseline, text);
        }
        self.y -= style.line_height();
        Ok(())
    }

    /// Wrapped text, `indent` body characters in.
    pub(crate) fn text(
        &mut self,
        style: Style,
        indent: usize,
        text: &str,
    ) -> Result<(), ExportError> {
        let indent_width = (indent as f32 * BODY / style.size) as usize;
        for line in wrap(text, line_chars(style).saturating_sub(indent_width)) {
            self.line(style, indent, &line)?;
        }
        Ok(())
    }

    /// A heading that is kept with at least `keep` body lines after it.
    pub(crate) fn heading(
        &mut self,
        style: Style,
        text: &str,
        keep: usize,
    ) -> Result<(), ExportError> {
        let lines = wrap(text, line_chars(style));
        let height =
            lines.len() as f32 * style.line_height() + keep as f32 * Style::BODY.line_height();
        self.ensure(height)?;
        for line in lines {
            self.line(style, 0, &line)?;
        }
        Ok(())
    }

    /// Ends the last page and writes the document trailer.
    pub(crate) fn finish(mut self, info: &Info<'_>) -> Result<(), ExportError> {
        // A document has at least one page, even with nothing on it.
        self.ensure(0.0)?;
        self.close_page()?;
        self.file.finish(info)
    }
}

fn show(content: &mut Content, style: Style, x: f32, y: f32, text: &str) {
    let font: Name<'static> = if style.bold { FONT_BOLD } else { FONT_REGULAR };
    content
        .begin_text()
        .set_font(font, style.size)
        .next_line(x, y)
        .show(Str(&winansi::encode(text)))
        .end_text();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_indentation_and_breaks_long_words() {
        let lines = wrap("  \"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa bb\"\nnext", 12);
        assert!(lines.iter().all(|l| l.chars().count() <= 12), "{lines:?}");
        assert!(lines[0].starts_with("  \"key\":"));
        assert!(lines[1].starts_with("    "));
        assert_eq!(lines.last().unwrap(), "next");
    }

    #[test]
    fn wrap_keeps_blank_lines_and_replaces_unencodable() {
        assert_eq!(wrap("a\n\n日本", 20), ["a", "", "??"]);
    }

    #[test]
    fn a_line_of_body_text_fits_the_page() {
        assert_eq!(line_chars(Style::BODY), 91);
    }
}

//! A PDF file written object by object: each page goes to the output as soon as it is full.
//!
//! pdf-writer builds the objects; this module only places them. `pdf_writer::Pdf` keeps the whole
//! file in one buffer until `finish`, so instead every object is written into its own small
//! `Chunk` (the object then starts at the chunk's first byte), flushed, and its offset noted.
//! The cross-reference table and trailer at the end are written here from those offsets: a
//! fixed 20-byte-per-entry format (PDF 2.0, 7.5.4) that pdf-writer only emits for its own buffer.
//! What stays in memory is one page's content and 8 bytes per object.

use std::io::{BufWriter, Write};

use flate2::write::ZlibEncoder;
use flate2::Compression;
use pdf_writer::{Chunk, Content, Date, Filter, Finish, Name, Rect, Ref, TextStr};

use crate::ExportError;

/// A4 in points: the paper size of the EU, where GDPR requests come from.
pub(crate) const PAGE_WIDTH: f32 = 595.0;
/// A4 height in points.
pub(crate) const PAGE_HEIGHT: f32 = 842.0;

/// Resource names of the two fonts every page may use.
pub(crate) const FONT_REGULAR: Name<'static> = Name(b"F1");
/// Bold counterpart of [`FONT_REGULAR`].
pub(crate) const FONT_BOLD: Name<'static> = Name(b"F2");

/// Document information shown by viewers.
pub(crate) struct Info<'a> {
    pub title: &'a str,
    pub producer: &'a str,
    pub created: Option<jiff::Timestamp>,
}

/// A PDF being written to `out`.
pub(crate) struct PdfFile<W: Write> {
    out: BufWriter<W>,
    /// Bytes written so far: the next object's offset.
    position: u64,
    /// Offset of each object, indexed by object number - 1.
    offsets: Vec<u64>,
    next_id: i32,
    catalog: Ref,
    pages: Ref,
    info: Ref,
    fonts: [Ref; 2],
    page_refs: Vec<Ref>,
    /// Reused across pages: a fresh compressor per page spent most of the time allocating and
    /// clearing its tables.
    zlib: ZlibEncoder<Vec<u8>>,
}

impl<W: Write> PdfFile<W> {
    /// Writes the file header and the two font objects.
    pub(crate) fn new(out: W) -> Result<Self, ExportError> {
        let mut file = Self {
            out: BufWriter::new(out),
            position: 0,
            offsets: Vec::new(),
            next_id: 1,
            catalog: Ref::new(1),
            pages: Ref::new(2),
            info: Ref::new(3),
            fonts: [Ref::new(4), Ref::new(5)],
            page_refs: Vec::new(),
            zlib: ZlibEncoder::new(Vec::new(), Compression::fast()),
        };
        file.next_id = 6;
        // The binary marker tells transfer tools the file is not text (PDF 2.0, 7.5.2).
        file.write_raw(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")?;
        for (id, base) in file
            .fonts
            .into_iter()
            .zip([&b"Courier"[..], b"Courier-Bold"])
        {
            let mut chunk = Chunk::new();
            chunk
                .type1_font(id)
                .base_font(Name(base))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
            file.write_object(id, &chunk)?;
        }
        Ok(file)
    }

    fn alloc(&mut self) -> Ref {
        let id = Ref::new(self.next_id);
        self.next_id += 1;
        id
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.out.write_all(bytes)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    /// Writes a chunk holding exactly the object `id`.
    fn write_object(&mut self, id: Ref, chunk: &Chunk) -> Result<(), ExportError> {
        let index = usize::try_from(id.get() - 1).expect("object numbers start at 1");
        if self.offsets.len() <= index {
            self.offsets.resize(index + 1, 0);
        }
        self.offsets[index] = self.position;
        self.write_raw(chunk.as_bytes())
    }

    /// Compresses one page's content and writes it with its page object.
    pub(crate) fn add_page(&mut self, content: Content) -> Result<(), ExportError> {
        self.zlib.write_all(&content.finish())?;
        // `reset` ends the zlib stream into the old buffer and starts a new one.
        let compressed = self.zlib.reset(Vec::new())?;

        let content_id = self.alloc();
        let mut chunk = Chunk::new();
        chunk
            .stream(content_id, &compressed)
            .filter(Filter::FlateDecode);
        self.write_object(content_id, &chunk)?;

        let page_id = self.alloc();
        let mut chunk = Chunk::new();
        let mut page = chunk.page(page_id);
        page.parent(self.pages)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(content_id);
        page.resources()
            .fonts()
            .pair(FONT_REGULAR, self.fonts[0])
            .pair(FONT_BOLD, self.fonts[1]);
        page.finish();
        self.write_object(page_id, &chunk)?;
        self.page_refs.push(page_id);
        Ok(())
    }

    /// Number of pages written so far.
    pub(crate) fn page_count(&self) -> usize {
        self.page_refs.len()
    }

    /// Writes the page tree, catalog, info, cross-reference table and trailer.
    pub(crate) fn finish(mut self, info: &Info<'_>) -> Result<(), ExportError> {
        let mut chunk = Chunk::new();
        let count = i32::try_from(self.page_refs.len()).unwrap_or(i32::MAX);
        chunk
            .pages(self.pages)
            .kids(self.page_refs.iter().copied())
            .count(count);
        self.write_object(self.pages, &chunk)?;

        let mut chunk = Chunk::new();
        chunk
            .indirect(self.catalog)
            .start::<pdf_writer::writers::Catalog>()
            .pages(self.pages);
        self.write_object(self.catalog, &chunk)?;

        let mut chunk = Chunk::new();
        let mut doc = chunk
            .indirect(self.info)
            .start::<pdf_writer::writers::DocumentInfo>();
        doc.title(TextStr(info.title))
            .producer(TextStr(info.producer));
        if let Some(t) = info.created {
            doc.creation_date(pdf_date(t));
        }
        doc.finish();
        self.write_object(self.info, &chunk)?;

        let xref_at = self.position;
        let size = self.offsets.len() + 1;
        let mut xref = format!("xref\n0 {size}\n0000000000 65535 f\r\n");
        for offset in &self.offsets {
            // Every allocated object is written before finish; a 0 here would be a bug.
            debug_assert_ne!(*offset, 0);
            xref.push_str(&format!("{offset:010} 00000 n\r\n"));
        }
        xref.push_str(&format!(
            "trailer\n<< /Size {size} /Root {} 0 R /Info {} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
            self.catalog.get(),
            self.info.get()
        ));
        self.write_raw(xref.as_bytes())?;
        let mut out = self.out.into_inner().map_err(|e| e.into_error())?;
        out.flush()?;
        Ok(())
    }
}

fn pdf_date(t: jiff::Timestamp) -> Date {
    let dt = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    // Dates before year 0 or after 9999 are clamped by pdf-writer; the i16 → u16 cast
    // only matters for years no export has.
    Date::new(dt.year().max(0) as u16)
        .month(dt.month() as u8)
        .day(dt.day() as u8)
        .hour(dt.hour() as u8)
        .minute(dt.minute() as u8)
        .second(dt.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

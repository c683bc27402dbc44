//! XML, read and written through one library (quick-xml): a small element tree for AWS's
//! answers and error documents, bounded in depth and size because it reads untrusted bytes,
//! and a writer that escapes every text it is given.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

/// Deeper documents than this are not AWS answers.
const MAX_DEPTH: usize = 64;
/// More elements than this in one document are refused rather than held.
const MAX_ELEMENTS: usize = 1 << 20;

/// One element: its local name (namespace prefix dropped), its text (the concatenation of
/// its own text nodes, unescaped), and its child elements in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    #[error("the document is deeper or larger than any AWS answer")]
    TooLarge,
    #[error("the document has no root element")]
    Empty,
}

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// An element holding only text.
    pub fn text(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            children: Vec::new(),
        }
    }

    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    pub fn push(&mut self, child: Element) -> &mut Self {
        self.children.push(child);
        self
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.name == name)
    }

    /// The first element named `name` at any depth, this one included.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|child| child.find(name))
    }

    /// Parses a whole document; the root element is returned.
    pub fn parse(text: &str) -> Result<Element, XmlError> {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.trim_text(false);
        config.expand_empty_elements = true;
        let mut stack: Vec<Element> = Vec::new();
        let mut count = 0usize;
        loop {
            let event = reader
                .read_event()
                .map_err(|error| XmlError::Malformed(error.to_string()))?;
            match event {
                Event::Start(start) => {
                    count += 1;
                    if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                        return Err(XmlError::TooLarge);
                    }
                    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                    stack.push(Element::new(name));
                }
                Event::End(_) => {
                    let done = stack.pop().ok_or(XmlError::Empty)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                Event::Text(text) => {
                    if let Some(open) = stack.last_mut() {
                        let decoded = text
                            .decode()
                            .map_err(|error| XmlError::Malformed(error.to_string()))?;
                        let unescaped = quick_xml::escape::unescape(&decoded)
                            .map_err(|error| XmlError::Malformed(error.to_string()))?;
                        open.text.push_str(&unescaped);
                    }
                }
                Event::GeneralRef(reference) => {
                    if let Some(open) = stack.last_mut() {
                        let name = reference
                            .decode()
                            .map_err(|error| XmlError::Malformed(error.to_string()))?;
                        let entity = format!("&{name};");
                        let resolved = quick_xml::escape::unescape(&entity)
                            .map_err(|error| XmlError::Malformed(error.to_string()))?;
                        open.text.push_str(&resolved);
                    }
                }
                Event::CData(data) => {
                    if let Some(open) = stack.last_mut() {
                        open.text.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Event::Eof => {
                    return Err(if stack.is_empty() {
                        XmlError::Empty
                    } else {
                        XmlError::Malformed("the document ends inside an element".into())
                    })
                }
                _ => {}
            }
        }
    }

    /// The document, with an XML declaration and `xmlns` on the root when given.
    pub fn to_document(&self, namespace: Option<&str>) -> String {
        let mut writer = Writer::new(Vec::new());
        let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        self.write(&mut writer, namespace);
        String::from_utf8(writer.into_inner()).unwrap_or_default()
    }

    fn write(&self, writer: &mut Writer<Vec<u8>>, namespace: Option<&str>) {
        let mut start = BytesStart::new(self.name.as_str());
        if let Some(namespace) = namespace {
            start.push_attribute(("xmlns", namespace));
        }
        let _ = writer.write_event(Event::Start(start));
        if !self.text.is_empty() {
            let _ = writer.write_event(Event::Text(BytesText::new(&self.text)));
        }
        for child in &self.children {
            child.write(writer, None);
        }
        let _ = writer.write_event(Event::End(BytesEnd::new(self.name.as_str())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_with_escaping() {
        let mut root = Element::new("ErrorResponse");
        root.push(Element::new("Error").with_child(Element::text("Message", "a < b & \"c\"")));
        let text = root.to_document(Some("https://example.com/doc/"));
        assert!(text.contains("a &lt; b &amp; &quot;c&quot;"), "{text}");
        let parsed = Element::parse(&text).unwrap();
        assert_eq!(parsed.find("Message").unwrap().text, "a < b & \"c\"");
        assert_eq!(parsed.name, "ErrorResponse");
    }

    #[test]
    fn prefixes_are_dropped_and_empty_elements_kept() {
        let parsed =
            Element::parse("<a:Root xmlns:a='x'><a:Item/><Item>2</Item></a:Root>").unwrap();
        assert_eq!(parsed.name, "Root");
        assert_eq!(parsed.children.len(), 2);
        assert_eq!(parsed.children[0].text, "");
        assert_eq!(parsed.children[1].text, "2");
    }

    #[test]
    fn bad_documents_are_refused() {
        assert!(Element::parse("").is_err());
        assert!(Element::parse("<a><b></a>").is_err());
        assert!(Element::parse("<a>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(Element::parse(&deep), Err(XmlError::TooLarge));
    }
}

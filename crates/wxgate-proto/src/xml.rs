//! Phase one of XML handling: WeChat's flat `<xml>` documents read into an ordered field map.
//!
//! WeChat pushes (and passive replies) are a single `<xml>` root whose children are text
//! leaves, with a few nested blocks (`ScanCodeInfo`, `SendPicsInfo`, `Articles`, …). Reading
//! every child into an ordered map of strings first, and only then dispatching on `MsgType` /
//! `Event`, is what lets unknown message types survive intact (quick-xml cannot deserialize
//! internally tagged enums anyway). This module is also the security boundary for XML:
//! documents with a `<!DOCTYPE` are refused, so no DTD or custom entity is ever expanded
//! (billion laughs, XXE); only the five predefined entities and character references are
//! decoded; nesting depth is bounded, and the reader is a single linear pass over the input.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Deepest element nesting accepted below the root. WeChat documents use at most 4
/// (`xml/CopyrightCheckResult/ResultList/item/…`); the bound keeps recursion in
/// [`Fields::to_json`] and in `Drop` shallow whatever the input.
pub const MAX_DEPTH: usize = 16;

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The XML itself is malformed (mismatched tags, bad syntax, unknown entity, …).
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The document carries a `<!DOCTYPE>`; DTDs are never processed.
    #[error("XML documents with a DOCTYPE are not accepted")]
    Doctype,
    /// Elements nest deeper than [`MAX_DEPTH`].
    #[error("XML nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// No root element at all.
    #[error("XML document has no root element")]
    NoRoot,
    /// Content after the root element (a second root or text).
    #[error("XML document has content after its root element")]
    TrailingContent,
    /// The input ended inside an element.
    #[error("XML document ends inside an element")]
    Unclosed,
    /// Text or a name is not valid UTF-8.
    #[error("XML document is not valid UTF-8")]
    InvalidUtf8,
    /// A JSON push (see [`crate::json_push`]) is not a JSON object.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A field every document of this kind must have is missing.
    #[error("missing field <{0}>")]
    MissingField(&'static str),
    /// A field has a value that cannot be right (e.g. a non-numeric `CreateTime`).
    #[error("invalid value in field <{0}>")]
    InvalidField(&'static str),
}

/// The value of one child element: text for a leaf, a nested map for an element with
/// children.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A leaf: entity-decoded text and CDATA sections concatenated.
    Text(String),
    /// An element with child elements (its own loose text is discarded).
    Nested(Fields),
}

impl FieldValue {
    /// The text of a leaf, `None` for a nested element.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(s) => Some(s),
            FieldValue::Nested(_) => None,
        }
    }

    /// The children of a nested element, `None` for a leaf.
    pub fn as_nested(&self) -> Option<&Fields> {
        match self {
            FieldValue::Text(_) => None,
            FieldValue::Nested(f) => Some(f),
        }
    }
}

/// Ordered child elements of one XML element, in document order; names may repeat
/// (`<item>` lists).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields(Vec<(String, FieldValue)>);

impl Fields {
    /// An empty map.
    pub fn new() -> Self {
        Fields(Vec::new())
    }

    /// Reads a whole document: returns the root element's name and its children.
    ///
    /// Never panics; runs in time linear in `xml.len()`.
    pub fn parse_document(xml: &[u8]) -> Result<(String, Fields), ParseError> {
        parse_document(xml)
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl Into<String>, value: FieldValue) {
        self.0.push((name.into(), value));
    }

    /// The first field called `name`.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a FieldValue> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The text of the first leaf called `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(FieldValue::as_text)
    }

    /// The children of the first nested element called `name`.
    pub fn nested(&self, name: &str) -> Option<&Fields> {
        self.get(name).and_then(FieldValue::as_nested)
    }

    /// All fields in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// JSON object with the XML element names as keys.
    ///
    /// Leaves become strings, except the fields named in `numeric` whose text is an integer
    /// (e.g. `CreateTime`, `MsgId`) which become numbers; nested elements become objects; a
    /// name that repeats becomes an array of its values (like xmltodict).
    pub fn to_json(&self, numeric: &[&str]) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, value) in &self.0 {
            let json = match value {
                FieldValue::Text(s) => text_to_json(name, s, numeric),
                FieldValue::Nested(f) => f.to_json(numeric),
            };
            match map.get_mut(name) {
                None => {
                    map.insert(name.clone(), json);
                }
                // Leaves are strings/numbers and nested elements objects, so an array here
                // can only be the repeat list built below.
                Some(serde_json::Value::Array(items)) => items.push(json),
                Some(existing) => {
                    let first = existing.take();
                    *existing = serde_json::Value::Array(vec![first, json]);
                }
            }
        }
        serde_json::Value::Object(map)
    }
}

fn text_to_json(name: &str, text: &str, numeric: &[&str]) -> serde_json::Value {
    if numeric.contains(&name) {
        if let Ok(n) = text.trim().parse::<i64>() {
            return serde_json::Value::from(n);
        }
        if let Ok(n) = text.trim().parse::<u64>() {
            return serde_json::Value::from(n);
        }
    }
    serde_json::Value::String(text.to_owned())
}

/// One open element while reading.
struct Frame {
    name: String,
    fields: Fields,
    /// Every text segment (entity-decoded text and CDATA).
    all_text: String,
    /// CDATA plus non-whitespace text: the value when the leaf contains any CDATA, so that
    /// indentation around a CDATA section does not end up in the value.
    significant_text: String,
    saw_cdata: bool,
    has_children: bool,
}

impl Frame {
    fn new(name: String) -> Self {
        Frame {
            name,
            fields: Fields::new(),
            all_text: String::new(),
            significant_text: String::new(),
            saw_cdata: false,
            has_children: false,
        }
    }

    fn into_value(self) -> (String, FieldValue) {
        let value = if self.has_children {
            FieldValue::Nested(self.fields)
        } else if self.saw_cdata {
            FieldValue::Text(self.significant_text)
        } else {
            FieldValue::Text(self.all_text)
        };
        (self.name, value)
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(bytes).map_err(|_| ParseError::InvalidUtf8)
}

fn xml_err(e: impl std::fmt::Display) -> ParseError {
    let mut s = String::new();
    let _ = write!(s, "{e}");
    ParseError::Xml(s)
}

fn parse_document(xml: &[u8]) -> Result<(String, Fields), ParseError> {
    let mut reader = Reader::from_reader(xml);
    {
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.allow_unmatched_ends = false;
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<(String, Fields)> = None;

    loop {
        let event = reader.read_event().map_err(xml_err)?;
        match event {
            Event::DocType(_) => return Err(ParseError::Doctype),
            Event::Start(start) => {
                if root.is_some() {
                    return Err(ParseError::TrailingContent);
                }
                // The root is stack[0]; children are counted below it.
                if stack.len() > MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                let name = utf8(start.name().as_ref())?.to_owned();
                stack.push(Frame::new(name));
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(ParseError::TrailingContent);
                }
                let name = utf8(start.name().as_ref())?.to_owned();
                if stack.len() > MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                match stack.last_mut() {
                    None => root = Some((name, Fields::new())),
                    Some(parent) => {
                        parent.has_children = true;
                        parent.fields.push(name, FieldValue::Text(String::new()));
                    }
                }
            }
            Event::End(_) => {
                // check_end_names guarantees the name matches the open element.
                let Some(frame) = stack.pop() else {
                    return Err(ParseError::Xml("unexpected end tag".into()));
                };
                match stack.last_mut() {
                    None => root = Some((frame.name, frame.fields)),
                    Some(parent) => {
                        parent.has_children = true;
                        let (name, value) = frame.into_value();
                        parent.fields.push(name, value);
                    }
                }
            }
            Event::Text(text) => {
                let decoded = text.unescape().map_err(xml_err)?;
                match stack.last_mut() {
                    None => {
                        if !decoded.trim().is_empty() {
                            return Err(if root.is_some() {
                                ParseError::TrailingContent
                            } else {
                                ParseError::Xml("text outside the root element".into())
                            });
                        }
                    }
                    Some(frame) => {
                        if !frame.has_children {
                            frame.all_text.push_str(&decoded);
                            if !decoded.trim().is_empty() {
                                frame.significant_text.push_str(&decoded);
                            }
                        }
                    }
                }
            }
            Event::CData(cdata) => {
                let bytes = cdata.into_inner();
                let s = utf8(&bytes)?;
                match stack.last_mut() {
                    None => {
                        return Err(if root.is_some() {
                            ParseError::TrailingContent
                        } else {
                            ParseError::Xml("CDATA outside the root element".into())
                        })
                    }
                    Some(frame) => {
                        if !frame.has_children {
                            frame.saw_cdata = true;
                            frame.all_text.push_str(s);
                            frame.significant_text.push_str(s);
                        }
                    }
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                if !stack.is_empty() {
                    return Err(ParseError::Unclosed);
                }
                return root.ok_or(ParseError::NoRoot);
            }
        }
    }
}

/// Appends `s` as one or more CDATA sections. A `]]>` inside `s` would end the section
/// early, so it is split across two sections (`]]]]><![CDATA[>`), which every XML reader
/// joins back into the original text.
pub fn push_cdata(out: &mut String, s: &str) {
    out.push_str("<![CDATA[");
    let mut rest = s;
    while let Some(pos) = rest.find("]]>") {
        out.push_str(&rest[..pos]);
        out.push_str("]]]]><![CDATA[>");
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    out.push_str("]]>");
}

/// Appends `<name><![CDATA[value]]></name>`.
pub fn push_cdata_element(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_cdata(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Appends `<name>value</name>` for a value known not to need escaping (numbers).
pub fn push_plain_element(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "<{name}>{value}</{name}>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_leaves_cdata_and_nested_blocks_in_order() {
        let xml = br#"<?xml version="1.0"?>
<xml>
  <ToUserName><![CDATA[gh_1]]></ToUserName>
  <!-- a comment -->
  <Plain>a &amp; b &#x4e2d;</Plain>
  <Empty/>
  <Split><![CDATA[x]]]]><![CDATA[>y]]></Split>
  <Info><A>1</A><B><![CDATA[2]]></B></Info>
  <Info><A>3</A></Info>
</xml>"#;
        let (root, fields) = Fields::parse_document(xml).unwrap();
        assert_eq!(root, "xml");
        let names: Vec<&str> = fields.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["ToUserName", "Plain", "Empty", "Split", "Info", "Info"]
        );
        assert_eq!(fields.text("ToUserName"), Some("gh_1"));
        assert_eq!(fields.text("Plain"), Some("a & b 中"));
        assert_eq!(fields.text("Empty"), Some(""));
        assert_eq!(fields.text("Split"), Some("x]]>y"));
        assert_eq!(fields.nested("Info").unwrap().text("B"), Some("2"));
        assert_eq!(fields.get_all("Info").count(), 2);
        let json = fields.to_json(&[]);
        assert_eq!(json["Info"][1]["A"], "3");
        assert_eq!(json["Info"][0]["B"], "2");
    }

    #[test]
    fn repeated_names_become_arrays_of_all_values() {
        let (_, f) = Fields::parse_document(b"<r><i>1</i><i>2</i><i>3</i></r>").unwrap();
        assert_eq!(f.to_json(&["i"]), serde_json::json!({"i": [1, 2, 3]}));
    }

    #[test]
    fn whitespace_around_cdata_is_not_part_of_the_value_but_plain_whitespace_is() {
        let (_, f) =
            Fields::parse_document(b"<xml><A>\n  <![CDATA[ v ]]>\n</A><B>  </B></xml>").unwrap();
        assert_eq!(f.text("A"), Some(" v "));
        assert_eq!(f.text("B"), Some("  "));
    }

    #[test]
    fn doctype_is_refused_billion_laughs() {
        let xml = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><Content>&lol9;</Content></xml>"#;
        assert_eq!(Fields::parse_document(xml), Err(ParseError::Doctype));
    }

    #[test]
    fn doctype_is_refused_external_entity() {
        let xml = br#"<?xml version="1.0"?>
<!DOCTYPE foo [ <!ELEMENT foo ANY > <!ENTITY xxe SYSTEM "file:///etc/passwd" >]>
<xml><Content>&xxe;</Content></xml>"#;
        assert_eq!(Fields::parse_document(xml), Err(ParseError::Doctype));
    }

    #[test]
    fn undeclared_custom_entities_are_errors_not_expansions() {
        let xml = b"<xml><Content>&xxe;</Content></xml>";
        assert!(matches!(
            Fields::parse_document(xml),
            Err(ParseError::Xml(_))
        ));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(Fields::parse_document(b""), Err(ParseError::NoRoot));
        assert_eq!(Fields::parse_document(b"  \n"), Err(ParseError::NoRoot));
        assert_eq!(
            Fields::parse_document(b"<xml><A>1</A>"),
            Err(ParseError::Unclosed)
        );
        assert_eq!(
            Fields::parse_document(b"<xml/><xml/>"),
            Err(ParseError::TrailingContent)
        );
        assert_eq!(
            Fields::parse_document(b"<xml></xml>junk"),
            Err(ParseError::TrailingContent)
        );
        assert!(Fields::parse_document(b"<xml><A>1</B></xml>").is_err());
        assert!(Fields::parse_document(b"</xml>").is_err());
        assert!(Fields::parse_document(b"<xml><A>\xff</A></xml>").is_err());
        assert_eq!(
            Fields::parse_document(b"<xml><\xff>1</\xff></xml>"),
            Err(ParseError::InvalidUtf8)
        );
        assert!(Fields::parse_document(b"<xml><A><![CDATA[\xff]]></A></xml>").is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = String::new();
        for _ in 0..100_000 {
            deep.push_str("<a>");
        }
        assert_eq!(
            Fields::parse_document(deep.as_bytes()),
            Err(ParseError::TooDeep)
        );
        let mut ok = String::new();
        for _ in 0..=MAX_DEPTH {
            ok.push_str("<a>");
        }
        for _ in 0..=MAX_DEPTH {
            ok.push_str("</a>");
        }
        assert!(Fields::parse_document(ok.as_bytes()).is_ok());
    }

    #[test]
    fn cdata_writer_splits_terminators() {
        let mut out = String::new();
        push_cdata(&mut out, "a]]>b]]>");
        assert_eq!(out, "<![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]>");
        let doc = format!("<xml><C>{out}</C></xml>");
        let (_, f) = Fields::parse_document(doc.as_bytes()).unwrap();
        assert_eq!(f.text("C"), Some("a]]>b]]>"));
    }
}

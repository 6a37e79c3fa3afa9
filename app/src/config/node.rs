//! One tree for both file formats: TOML and YAML parse into a [`Node`], and the schema reads
//! nodes, so both formats share one schema and one set of error messages.

use std::fmt;

use spindle_runtime::Value;

/// A parsed value of an entry file.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// YAML `null` / `~` (TOML has none).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (TOML dates and times are kept as their text).
    Str(String),
    /// A list.
    List(Vec<Node>),
    /// A table, in file order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// What kind of value this is, for error messages ("found a list").
    pub fn describe(&self) -> String {
        match self {
            Node::Null => "null".into(),
            Node::Bool(b) => format!("the boolean {b}"),
            Node::Int(i) => format!("the integer {i}"),
            Node::Float(x) => format!("the number {x}"),
            Node::Str(s) => format!("the string {s:?}"),
            Node::List(_) => "a list".into(),
            Node::Map(_) => "a table".into(),
        }
    }

    /// The value a backend or a process sees.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Nil,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::Float(x) => Value::Float(*x),
            Node::Str(s) => Value::from(s.as_str()),
            Node::List(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Node::Map(kv) => Value::Map(
                kv.iter().map(|(k, v)| (Value::from(k.as_str()), v.to_value())).collect(),
            ),
        }
    }

    pub(crate) fn from_toml(v: &toml::Value) -> Node {
        match v {
            toml::Value::String(s) => Node::Str(s.clone()),
            toml::Value::Integer(i) => Node::Int(*i),
            toml::Value::Float(x) => Node::Float(*x),
            toml::Value::Boolean(b) => Node::Bool(*b),
            toml::Value::Datetime(d) => Node::Str(d.to_string()),
            toml::Value::Array(items) => Node::List(items.iter().map(Node::from_toml).collect()),
            toml::Value::Table(t) => Node::from_toml_table(t),
        }
    }

    pub(crate) fn from_toml_table(t: &toml::Table) -> Node {
        Node::Map(t.iter().map(|(k, v)| (k.clone(), Node::from_toml(v))).collect())
    }

    /// Converts a YAML document; a key that is not a string is an error.
    pub(crate) fn from_yaml(y: &yaml_rust2::Yaml) -> Result<Node, String> {
        use yaml_rust2::Yaml;
        Ok(match y {
            Yaml::Null => Node::Null,
            Yaml::Boolean(b) => Node::Bool(*b),
            Yaml::Integer(i) => Node::Int(*i),
            Yaml::Real(text) => match y.as_f64() {
                Some(x) => Node::Float(x),
                None => Node::Str(text.clone()),
            },
            Yaml::String(s) => Node::Str(s.clone()),
            Yaml::Array(items) => {
                Node::List(items.iter().map(Node::from_yaml).collect::<Result<_, _>>()?)
            }
            Yaml::Hash(h) => {
                let mut kv = Vec::with_capacity(h.len());
                for (k, v) in h {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => {
                            return Err(format!(
                                "a table key must be a string, found {}",
                                Node::from_yaml(other).map_or("a table".into(), |n| n.describe())
                            ));
                        }
                    };
                    kv.push((key, Node::from_yaml(v)?));
                }
                Node::Map(kv)
            }
            Yaml::Alias(_) => return Err("YAML aliases are not supported".into()),
            Yaml::BadValue => return Err("a value could not be read".into()),
        })
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

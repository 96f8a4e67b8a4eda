//! placeholder until the YAML reader lands (temporary stub so the crate builds)
use serde_yaml::Value;
#[derive(Clone, Debug)]
pub enum PathSeg { Key(String), Index(usize) }
pub struct Document { pub value: Value }
impl Document { pub fn line_of(&self, _p: &[PathSeg]) -> Option<usize> { None } }
pub fn parse_documents(text: &str, file: &str) -> Result<Vec<Document>, String> {
    let mut v: Value = serde_yaml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    v.apply_merge().map_err(|e| e.to_string())?;
    Ok(vec![Document { value: v }])
}
pub fn scalar_string(v: &Value) -> Option<String> {
    match v { Value::String(s) => Some(s.clone()), Value::Number(n) => Some(n.to_string()), Value::Bool(b) => Some(b.to_string()), _ => None }
}

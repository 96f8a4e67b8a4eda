//! kustomize's two patch forms on a located tree: strategic merge (maps merge, `null` deletes,
//! the lists Kubernetes merges by a key — containers and env by `name`, mounts by `mountPath` —
//! merge item by item, other lists are replaced) and JSON 6902 (`add`, `remove`, `replace`,
//! `move`, `copy`, `test` at JSON pointers). What neither can apply faithfully is an error the
//! caller turns into a refusal.

use super::node::Node;

/// The key by which Kubernetes' strategic merge merges a list field; `None`: the list is replaced.
/// `in_container`: the field is inside a container (its `ports` merge by `containerPort`).
fn merge_key(field: &str, in_container: bool) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" if in_container => "containerPort",
        "ports" => "port",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// A directive of the strategic merge patch (`$patch`, `$setElementOrder/…`, `$retainKeys`,
/// `$deleteFromPrimitiveList/…`).
fn directive(node: &Node) -> Option<String> {
    node.get("$patch").and_then(Node::text)
}

/// Why a strategic-merge patch cannot be applied as kustomize applies it; the caller says where
/// the patch is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmergeable {
    #[error("`$patch: {0}` on a mapping")]
    MapDirective(String),
    #[error("the strategic-merge directive `{0}`")]
    Directive(String),
    #[error("an item of `{field}` without its merge key `{key}`")]
    ItemWithoutKey { field: String, key: String },
    #[error("`$patch: {directive}` in an item of `{field}`")]
    ItemDirective { field: String, directive: String },
}

/// Why a JSON 6902 patch cannot be applied (kustomize refuses it too); the caller says where the
/// patch is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unpatchable {
    #[error("a JSON 6902 patch is a list of operations")]
    NotAList,
    #[error("an operation without `path`")]
    NoPath,
    #[error("`{op}` at `{path}` without `{field}`")]
    Missing { op: String, path: String, field: &'static str },
    #[error("the path `{0}` does not start with `/`")]
    NotAPointer(String),
    #[error("the path `{0}` is not in the resource")]
    NotInResource(String),
    #[error("cannot remove the whole resource")]
    WholeResource,
    #[error("the index in `{0}` is out of the list")]
    IndexOutOfList(String),
    #[error("the path `{0}` goes through a scalar")]
    ThroughScalar(String),
    #[error("the test at `{0}` fails: the resource holds another value")]
    TestFails(String),
    #[error("the operation `{0}` is not a JSON 6902 operation")]
    UnknownOperation(String),
}

/// Merge `patch` into `target` as a strategic merge patch does. `field` is the key the two
/// nodes are under; `in_container` whether they are inside a container.
pub fn strategic_merge(target: &mut Node, patch: &Node, field: &str, in_container: bool) -> Result<(), Unmergeable> {
    match (target, patch) {
        (target @ Node::Map(..), Node::Map(entries, _)) => {
            match directive(patch).as_deref() {
                None | Some("merge") => {}
                Some("replace") => {
                    *target = without_directives(patch);
                    return Ok(());
                }
                Some(other) => return Err(Unmergeable::MapDirective(other.to_string())),
            }
            for (k, pv) in entries {
                if k == "$patch" {
                    continue;
                }
                if k.starts_with('$') {
                    return Err(Unmergeable::Directive(k.clone()));
                }
                if pv.is_null() || directive(pv).as_deref() == Some("delete") {
                    target.remove(k);
                    continue;
                }
                let inside = in_container || matches!(field, "containers" | "initContainers" | "ephemeralContainers");
                match target.get_mut(k) {
                    Some(tv)
                        if std::mem::discriminant(tv) == std::mem::discriminant(pv)
                            && !matches!(pv, Node::Scalar(..)) =>
                    {
                        strategic_merge(tv, pv, k, inside)?
                    }
                    _ => target.set(k, without_directives(pv)),
                }
            }
            Ok(())
        }
        (target @ Node::Seq(..), Node::Seq(items, at)) => {
            let key = merge_key(field, in_container).filter(|_| items.iter().all(|i| matches!(i, Node::Map(..))));
            let Some(key) = key else {
                *target = without_directives(patch);
                return Ok(());
            };
            if items.iter().any(|i| directive(i).as_deref() == Some("replace")) {
                let kept = items.iter().filter(|i| directive(i).is_none()).map(without_directives).collect();
                *target = Node::Seq(kept, at.clone());
                return Ok(());
            }
            let Node::Seq(current, _) = target else { unreachable!("matched above") };
            for item in items {
                let Some(id) = item.get(key).map(Node::value) else {
                    return Err(Unmergeable::ItemWithoutKey { field: field.to_string(), key: key.to_string() });
                };
                let found = current.iter().position(|c| c.get(key).map(Node::value).as_ref() == Some(&id));
                match (directive(item).as_deref(), found) {
                    (Some("delete"), Some(i)) => {
                        current.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (Some(other), _) if other != "merge" => {
                        return Err(Unmergeable::ItemDirective {
                            field: field.to_string(),
                            directive: other.to_string(),
                        });
                    }
                    (_, Some(i)) => strategic_merge(&mut current[i], item, field, in_container)?,
                    (_, None) => current.push(without_directives(item)),
                }
            }
            Ok(())
        }
        (target, patch) => {
            *target = without_directives(patch);
            Ok(())
        }
    }
}

/// A patch's own value as it lands in the resource: directives and `null`s dropped.
fn without_directives(node: &Node) -> Node {
    match node {
        Node::Map(entries, at) => Node::Map(
            entries
                .iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), without_directives(v)))
                .collect(),
            at.clone(),
        ),
        Node::Seq(items, at) => {
            Node::Seq(items.iter().filter(|i| directive(i).is_none()).map(without_directives).collect(), at.clone())
        }
        other => other.clone(),
    }
}

/// A JSON pointer's reference tokens (`~1` is `/`, `~0` is `~`).
fn pointer(p: &str) -> Result<Vec<String>, Unpatchable> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else { return Err(Unpatchable::NotAPointer(p.to_string())) };
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn child_mut<'a>(node: &'a mut Node, token: &str) -> Option<&'a mut Node> {
    match node {
        Node::Map(..) => node.get_mut(token),
        Node::Seq(items, _) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        Node::Scalar(..) => None,
    }
}

fn locate<'a>(root: &'a mut Node, tokens: &[String], path: &str) -> Result<&'a mut Node, Unpatchable> {
    let mut cur = root;
    for t in tokens {
        cur = child_mut(cur, t).ok_or_else(|| Unpatchable::NotInResource(path.to_string()))?;
    }
    Ok(cur)
}

fn remove_at(root: &mut Node, path: &str) -> Result<Node, Unpatchable> {
    let tokens = pointer(path)?;
    let Some((last, parent)) = tokens.split_last() else { return Err(Unpatchable::WholeResource) };
    let parent = locate(root, parent, path)?;
    let missing = || Unpatchable::NotInResource(path.to_string());
    match parent {
        Node::Map(..) => parent.remove(last).ok_or_else(missing),
        Node::Seq(items, _) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => Ok(items.remove(i)),
            _ => Err(missing()),
        },
        Node::Scalar(..) => Err(missing()),
    }
}

fn add_at(root: &mut Node, path: &str, value: Node, replace: bool) -> Result<(), Unpatchable> {
    let tokens = pointer(path)?;
    let Some((last, parent)) = tokens.split_last() else {
        *root = value;
        return Ok(());
    };
    let parent = locate(root, parent, path)?;
    match parent {
        Node::Map(..) => {
            if replace && parent.get(last).is_none() {
                return Err(Unpatchable::NotInResource(path.to_string()));
            }
            parent.set(last, value);
            Ok(())
        }
        Node::Seq(items, _) => {
            let index = if last == "-" && !replace { Some(items.len()) } else { last.parse::<usize>().ok() };
            match index {
                Some(i) if replace && i < items.len() => {
                    items[i] = value;
                    Ok(())
                }
                Some(i) if !replace && i <= items.len() => {
                    items.insert(i, value);
                    Ok(())
                }
                _ => Err(Unpatchable::IndexOutOfList(path.to_string())),
            }
        }
        Node::Scalar(..) => Err(Unpatchable::ThroughScalar(path.to_string())),
    }
}

/// Apply a JSON 6902 patch (a list of operations) to `target`.
pub fn json6902(target: &mut Node, ops: &Node) -> Result<(), Unpatchable> {
    let Node::Seq(ops, _) = ops else { return Err(Unpatchable::NotAList) };
    for op in ops {
        let name = op.get("op").and_then(Node::text).unwrap_or_default();
        let path = op.get("path").and_then(Node::text).ok_or(Unpatchable::NoPath)?;
        let missing = |field| Unpatchable::Missing { op: name.clone(), path: path.clone(), field };
        let value = || op.get("value").cloned().ok_or_else(|| missing("value"));
        let from = || op.get("from").and_then(Node::text).ok_or_else(|| missing("from"));
        match name.as_str() {
            "add" => add_at(target, &path, value()?, false)?,
            "replace" => add_at(target, &path, value()?, true)?,
            "remove" => {
                remove_at(target, &path)?;
            }
            "move" => {
                let moved = remove_at(target, &from()?)?;
                add_at(target, &path, moved, false)?;
            }
            "copy" => {
                let from = from()?;
                let copied = locate(target, &pointer(&from)?, &from)?.clone();
                add_at(target, &path, copied, false)?;
            }
            "test" => {
                let expected = value()?.value();
                let found = locate(target, &pointer(&path)?, &path)?.value();
                if found != expected {
                    return Err(Unpatchable::TestFails(path));
                }
            }
            other => return Err(Unpatchable::UnknownOperation(other.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;

    fn node(text: &str, file: &str) -> Node {
        let doc = &crate::read::yaml::parse_documents(text, file).unwrap()[0];
        Node::of_document(doc, None, 0)
    }

    #[test]
    fn containers_and_env_merge_by_name_args_are_replaced() {
        let mut base = node(
            "containers:\n- name: api\n  args: [a, b]\n  env:\n  - name: A\n    value: '1'\n  - name: B\n    value: '2'\n- name: side\n",
            "base.yaml",
        );
        let patch = node(
            "containers:\n- name: api\n  args: [c]\n  env:\n  - name: B\n    value: '3'\n  - name: C\n    value: '4'\n",
            "patch.yaml",
        );
        strategic_merge(&mut base, &patch, "", false).unwrap();
        let v = base.value();
        let api = &v["containers"][0];
        assert_eq!(api["args"], serde_yaml::from_str::<Value>("[c]").unwrap());
        assert_eq!(api["env"].as_sequence().unwrap().len(), 3);
        assert_eq!(api["env"][1]["value"], Value::String("3".into()));
        assert_eq!(v["containers"].as_sequence().unwrap().len(), 2);
        // The changed value is located in the patch.
        let env_b = &base.get("containers").unwrap().items()[0].get("env").unwrap().items()[1];
        assert_eq!(env_b.get("value").unwrap().at(), &("patch.yaml".to_string(), 6));
    }

    #[test]
    fn null_deletes_and_delete_directive_removes_an_item() {
        let mut base = node("a: 1\nenv:\n- name: A\n- name: B\n", "b");
        let patch = node("a: null\nenv:\n- name: A\n  $patch: delete\n", "p");
        strategic_merge(&mut base, &patch, "", true).unwrap();
        assert_eq!(base.value(), serde_yaml::from_str::<Value>("env:\n- name: B\n").unwrap());
    }

    #[test]
    fn json6902_operations() {
        let mut base = node("spec:\n  replicas: 1\n  args: [a]\n", "b");
        let ops = node(
            "- op: replace\n  path: /spec/replicas\n  value: 4\n- op: add\n  path: /spec/args/-\n  value: b\n- op: test\n  path: /spec/args/1\n  value: b\n",
            "p",
        );
        json6902(&mut base, &ops).unwrap();
        assert_eq!(base.value(), serde_yaml::from_str::<Value>("spec:\n  replicas: 4\n  args: [a, b]\n").unwrap());
        let bad = node("- op: replace\n  path: /spec/missing\n  value: 1\n", "p");
        assert_eq!(json6902(&mut base, &bad), Err(Unpatchable::NotInResource("/spec/missing".into())));
    }
}

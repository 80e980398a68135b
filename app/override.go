package app

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// applySets applies --set KEY=VALUE overrides to the parsed document root
// before it is decoded, so an override is checked exactly like the file:
// a restore to another database or directory needs no edited copy of the
// config. KEY is a dotted path of mapping keys; under components, a
// component is named by its name (components.db.restore). VALUE is YAML:
// a scalar, or a flow list such as [pg_restore, --dbname=copy].
func applySets(root *yaml.Node, sets []string) error {
	if len(sets) == 0 {
		return nil
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	for _, set := range sets {
		key, val, ok := strings.Cut(set, "=")
		if !ok || key == "" {
			return fmt.Errorf("--set %q: want KEY=VALUE, e.g. components.db.restore='[pg_restore, --dbname=copy]'", set)
		}
		var v yaml.Node
		if err := yaml.Unmarshal([]byte(val), &v); err != nil {
			return fmt.Errorf("--set %s: value: %w", key, err)
		}
		value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
		if len(v.Content) == 1 {
			value = v.Content[0]
		}
		if err := setPath(root, strings.Split(key, "."), value); err != nil {
			return fmt.Errorf("--set %s: %w", key, err)
		}
	}
	return nil
}

// setPath sets the value at path below n, creating mapping keys (not
// components) that are missing.
func setPath(n *yaml.Node, path []string, value *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s is not a mapping", path[0])
	}
	k := path[0]
	var child *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == k {
			child = n.Content[i+1]
			if len(path) == 1 {
				n.Content[i+1] = value
				return nil
			}
		}
	}
	if len(path) == 1 {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, value)
		return nil
	}
	if k == "components" {
		if child == nil || child.Kind != yaml.SequenceNode {
			return fmt.Errorf("the config has no components")
		}
		name := path[1]
		for _, c := range child.Content {
			if componentName(c) == name {
				if len(path) == 2 {
					return fmt.Errorf("give a key of component %s (e.g. components.%s.tree)", name, name)
				}
				return setPath(c, path[2:], value)
			}
		}
		return fmt.Errorf("the config has no component %q", name)
	}
	if child == nil {
		child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, child)
	}
	return setPath(child, path[1:], value)
}

func componentName(c *yaml.Node) string {
	if c.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(c.Content); i += 2 {
		if c.Content[i].Value == "name" {
			return c.Content[i+1].Value
		}
	}
	return ""
}

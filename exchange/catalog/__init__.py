"""The catalog (政务信息资源目录): its model, loader and rules, YAML files, signatures."""

"""The default digest templates, shipped inside the wheel as ``publisher/templates``.

Set ``[digest] templates_dir`` in publisher.toml to use your own copies instead.
"""

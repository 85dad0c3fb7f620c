"""``lambdamesh topology``: the system's picture, read from its stacks, as mermaid and SVG.

:mod:`~lambdamesh.topology.model` is the picture's content (services, functions, topics,
queues, dead-letter queues and what connects them, under names stable across deployments);
:mod:`~lambdamesh.topology.deployed` reads it from the deployed stacks,
:mod:`~lambdamesh.topology.templates` from the templates a deploy would send;
:mod:`~lambdamesh.topology.mermaid` and :mod:`~lambdamesh.topology.svg` draw it.
"""

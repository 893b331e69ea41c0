"""Report: one place that renders a recommendation as text, Markdown or JSON, and the exported model.

Export writes the fine-tuned model with a model card; predict applies an exported model to new data.
"""

from setuptools import find_packages, setup

setup(
    name="shoplens",
    version="0.1.0",
    description="E-commerce product classification and visual search: a Make-driven pipeline "
    "from a shop's catalog to trained classifiers, image embeddings and a searchable gallery.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"shoplens": ["data/stopwords/*.txt", "gallery/templates/*.html", "gallery/static/*"]},
    install_requires=[
        "click>=8.1",
        "faiss-cpu>=1.8",
        "imagehash>=4.3",
        "keras>=3.15,<3.16",  # models/distribute.py adapts private parts of Keras 3.15's fit
        "matplotlib>=3.8",
        "nltk>=3.8",
        "numpy>=1.26",
        "pandas>=2.1",
        "pillow>=10",
        "pyarrow>=14",
        "pyyaml>=6",
        "scikit-learn>=1.4",
        "scipy>=1.11",
        "tensorboard>=2.16",
        "tensorflow>=2.16",
        "tqdm>=4.66",
        "flask>=3.0",
        "waitress>=3.0",
    ],
    entry_points={"console_scripts": ["shoplens=shoplens.cli:main"]},
)

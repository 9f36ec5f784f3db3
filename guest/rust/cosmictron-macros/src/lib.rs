//! `#[table]`, `#[reducer]` and `#[ctype]` for Cosmictron guest modules (syn 1).
//!
//! Each macro writes its item's part of the module description (module ABI v1) as
//! MessagePack bytes into a `cosmictron_describe` custom section, which the linker
//! concatenates and the host reads; `#[reducer]` also exports the reducer as
//! `cosmictron_reducer_<name>`. Types are described from their syntax: the scalar names
//! below, `Option<T>`, `Vec<T>`, `Vector<N>`, and any other path as a reference to a type
//! declared with `#[ctype]` (or a table's row type).

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::{
    parse_macro_input, AttributeArgs, Fields, FnArg, GenericArgument, Ident, ItemEnum, ItemFn,
    ItemStruct, Lit, Meta, NestedMeta, PathArguments, ReturnType, Type,
};

// -- a tiny MessagePack writer for the descriptions ------------------------------------

enum Mp {
    Nil,
    Bool(bool),
    Int(u64),
    Str(String),
    Arr(Vec<Mp>),
    Map(Vec<(String, Mp)>),
}

fn s(v: &str) -> Mp {
    Mp::Str(v.to_string())
}

impl Mp {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Mp::Nil => out.push(0xc0),
            Mp::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Mp::Int(v) => {
                if *v < 128 {
                    out.push(*v as u8)
                } else {
                    out.push(0xcf);
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Mp::Str(t) => {
                let n = t.len();
                if n < 32 {
                    out.push(0xa0 | n as u8);
                } else {
                    out.push(0xdb);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
                out.extend_from_slice(t.as_bytes());
            }
            Mp::Arr(items) => {
                out.push(0xdd);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for item in items {
                    item.write(out);
                }
            }
            Mp::Map(items) => {
                out.push(0xdf);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for (k, v) in items {
                    s(k).write(out);
                    v.write(out);
                }
            }
        }
    }
}

fn err<T: quote::ToTokens>(t: T, msg: &str) -> TokenStream {
    syn::Error::new_spanned(t, msg).to_compile_error().into()
}

const SCALARS: &[(&str, &str)] = &[
    ("bool", "bool"),
    ("String", "str"),
    ("Bytes", "bytes"),
    ("f32", "f32"),
    ("f64", "f64"),
    ("i8", "i8"),
    ("i16", "i16"),
    ("i32", "i32"),
    ("i64", "i64"),
    ("i128", "i128"),
    ("u8", "u8"),
    ("u16", "u16"),
    ("u32", "u32"),
    ("u64", "u64"),
    ("u128", "u128"),
    ("Identity", "Identity"),
    ("ConnectionId", "ConnectionId"),
    ("Timestamp", "Timestamp"),
    ("TimeDuration", "TimeDuration"),
    ("ScheduleAt", "ScheduleAt"),
];

/// A type's description keys (`{"type": ..., ...}`) from its syntax.
fn type_keys(ty: &Type) -> Result<Vec<(String, Mp)>, syn::Error> {
    let path = match ty {
        Type::Path(p) => &p.path,
        Type::Reference(r) => return type_keys(&r.elem),
        _ => return Err(syn::Error::new_spanned(ty, "unsupported column type")),
    };
    let last = path.segments.last().unwrap();
    let name = last.ident.to_string();
    let generic = |i: usize| -> Option<&GenericArgument> {
        match &last.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().nth(i),
            _ => None,
        }
    };
    if let Some((_, desc)) = SCALARS.iter().find(|(n, _)| *n == name) {
        return Ok(vec![("type".into(), s(desc))]);
    }
    if name == "Option" || name == "Vec" {
        let inner = match generic(0) {
            Some(GenericArgument::Type(t)) => t,
            _ => return Err(syn::Error::new_spanned(ty, "expected a type argument")),
        };
        let kind = if name == "Option" { "Optional" } else { "list" };
        return Ok(vec![("type".into(), s(kind)), ("of".into(), Mp::Map(type_keys(inner)?))]);
    }
    if name == "Vector" {
        if let Some(GenericArgument::Const(syn::Expr::Lit(l))) = generic(0) {
            if let Lit::Int(n) = &l.lit {
                let dim: u64 = n.base10_parse()?;
                return Ok(vec![("type".into(), s("Vector")), ("dimension".into(), Mp::Int(dim))]);
            }
        }
        return Err(syn::Error::new_spanned(ty, "Vector<N> needs a literal N"));
    }
    Ok(vec![("type".into(), s("ref")), ("ref".into(), s(&name))])
}

fn fragment(items: Vec<(String, Mp)>) -> Mp {
    let mut all = vec![("abi".to_string(), Mp::Int(1))];
    all.extend(items);
    Mp::Map(all)
}

fn section(name: &str, doc: Mp) -> proc_macro2::TokenStream {
    let mut bytes = Vec::new();
    doc.write(&mut bytes);
    let len = bytes.len();
    let ident = format_ident!("__COSMICTRON_DESCRIBE_{}", name.to_uppercase());
    quote! {
        #[doc(hidden)]
        #[link_section = "cosmictron_describe"]
        #[used]
        static #ident: [u8; #len] = [#(#bytes),*];
    }
}

fn string_arg(nv: &syn::MetaNameValue) -> Result<String, syn::Error> {
    match &nv.lit {
        Lit::Str(v) => Ok(v.value()),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}

// -- #[table] -----------------------------------------------------------------------------

struct Column {
    ident: Ident,
    ty: Type,
    primary_key: bool,
    auto_inc: bool,
    unique: bool,
    index: Option<String>,
}

/// `#[table(name = "agent_message", public, event, scheduled = "reducer",
/// primary_key = "a,b", index(name = "by_ab", columns = "a,b", kind = "btree"))]` on a
/// struct with named fields; fields may carry `#[primary_key]`, `#[auto_inc]`,
/// `#[unique]` and `#[index]` / `#[index(hash)]`.
#[proc_macro_attribute]
pub fn table(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as AttributeArgs);
    let mut input = parse_macro_input!(item as ItemStruct);
    let mut name = input.ident.to_string();
    let (mut public, mut event) = (false, false);
    let mut scheduled: Option<String> = None;
    let mut composite_key: Vec<String> = Vec::new();
    let mut indexes: Vec<Mp> = Vec::new();
    for arg in args {
        match arg {
            NestedMeta::Meta(Meta::NameValue(nv)) if nv.path.is_ident("name") => {
                match string_arg(&nv) {
                    Ok(v) => name = v,
                    Err(e) => return e.to_compile_error().into(),
                }
            }
            NestedMeta::Meta(Meta::NameValue(nv)) if nv.path.is_ident("scheduled") => {
                match string_arg(&nv) {
                    Ok(v) => scheduled = Some(v),
                    Err(e) => return e.to_compile_error().into(),
                }
            }
            NestedMeta::Meta(Meta::NameValue(nv)) if nv.path.is_ident("primary_key") => {
                match string_arg(&nv) {
                    Ok(v) => composite_key = v.split(',').map(|c| c.trim().to_string()).collect(),
                    Err(e) => return e.to_compile_error().into(),
                }
            }
            NestedMeta::Meta(Meta::Path(p)) if p.is_ident("public") => public = true,
            NestedMeta::Meta(Meta::Path(p)) if p.is_ident("event") => event = true,
            NestedMeta::Meta(Meta::List(list)) if list.path.is_ident("index") => {
                let (mut iname, mut columns, mut kind, mut unique) =
                    (String::new(), Vec::new(), "btree".to_string(), false);
                for nested in list.nested.iter() {
                    match nested {
                        NestedMeta::Meta(Meta::NameValue(nv)) => {
                            let v = match string_arg(nv) {
                                Ok(v) => v,
                                Err(e) => return e.to_compile_error().into(),
                            };
                            if nv.path.is_ident("name") {
                                iname = v
                            } else if nv.path.is_ident("columns") {
                                columns = v.split(',').map(|c| s(c.trim())).collect()
                            } else if nv.path.is_ident("kind") {
                                kind = v
                            } else {
                                return err(nv, "index takes name, columns, kind, unique");
                            }
                        }
                        NestedMeta::Meta(Meta::Path(p)) if p.is_ident("unique") => unique = true,
                        other => return err(other, "index takes name, columns, kind, unique"),
                    }
                }
                indexes.push(Mp::Map(vec![
                    ("name".into(), s(&iname)),
                    ("columns".into(), Mp::Arr(columns)),
                    ("kind".into(), s(&kind)),
                    ("unique".into(), Mp::Bool(unique)),
                ]));
            }
            other => {
                return err(
                    other,
                    "expected name = \"...\", public, event, scheduled = \"...\", primary_key = \"...\" or index(...)",
                )
            }
        }
    }
    let fields = match &mut input.fields {
        Fields::Named(f) => f,
        _ => return err(&input, "#[table] needs a struct with named fields"),
    };
    let mut columns = Vec::new();
    for field in fields.named.iter_mut() {
        let mut column = Column {
            ident: field.ident.clone().unwrap(),
            ty: field.ty.clone(),
            primary_key: false,
            auto_inc: false,
            unique: false,
            index: None,
        };
        let mut kept = Vec::new();
        for attribute in field.attrs.drain(..) {
            if attribute.path.is_ident("primary_key") {
                column.primary_key = true;
            } else if attribute.path.is_ident("auto_inc") {
                column.auto_inc = true;
            } else if attribute.path.is_ident("unique") {
                column.unique = true;
            } else if attribute.path.is_ident("index") {
                let kind = match attribute.parse_meta() {
                    Ok(Meta::List(l)) => match l.nested.first() {
                        Some(NestedMeta::Meta(Meta::Path(p))) if p.is_ident("hash") => "hash",
                        _ => "btree",
                    },
                    _ => "btree",
                };
                column.index = Some(kind.to_string());
            } else {
                kept.push(attribute);
            }
        }
        field.attrs = kept;
        columns.push(column);
    }
    let ident = &input.ident;
    let mut column_docs = Vec::new();
    let mut primary_key = composite_key.clone();
    for column in &columns {
        let mut keys = vec![("name".to_string(), s(&column.ident.to_string()))];
        match type_keys(&column.ty) {
            Ok(k) => keys.extend(k),
            Err(e) => return e.to_compile_error().into(),
        }
        if column.auto_inc {
            keys.push(("auto_inc".into(), Mp::Bool(true)));
        }
        column_docs.push(Mp::Map(keys));
        let cname = column.ident.to_string();
        if column.primary_key {
            primary_key.push(cname.clone());
        } else if column.unique {
            indexes.push(Mp::Map(vec![
                ("name".into(), s(&cname)),
                ("columns".into(), Mp::Arr(vec![s(&cname)])),
                ("kind".into(), s(column.index.as_deref().unwrap_or("btree"))),
                ("unique".into(), Mp::Bool(true)),
            ]));
        } else if let Some(kind) = &column.index {
            indexes.push(Mp::Map(vec![
                ("name".into(), s(&cname)),
                ("columns".into(), Mp::Arr(vec![s(&cname)])),
                ("kind".into(), s(kind)),
                ("unique".into(), Mp::Bool(false)),
            ]));
        }
    }
    let description = fragment(vec![(
        "tables".into(),
        Mp::Arr(vec![Mp::Map(vec![
            ("name".into(), s(&name)),
            ("class".into(), s(&ident.to_string())),
            ("columns".into(), Mp::Arr(column_docs)),
            ("primary_key".into(), Mp::Arr(primary_key.iter().map(|c| s(c)).collect())),
            ("indexes".into(), Mp::Arr(indexes)),
            ("public".into(), Mp::Bool(public)),
            ("event".into(), Mp::Bool(event)),
            ("scheduled".into(), scheduled.as_deref().map(s).unwrap_or(Mp::Nil)),
        ])]),
    )]);
    let section = section(&format!("table_{}", name), description);
    let idents: Vec<&Ident> = columns.iter().map(|c| &c.ident).collect();
    let width = columns.len();
    let needs_result = columns.iter().any(|c| c.auto_inc);
    let mut methods = Vec::new();
    for column in &columns {
        let cname = column.ident.to_string();
        let ty = &column.ty;
        let single_key = column.primary_key && composite_key.is_empty();
        if single_key || column.unique {
            let find = format_ident!("find_by_{}", column.ident);
            let update = format_ident!("update_by_{}", column.ident);
            let delete = format_ident!("delete_by_{}", column.ident);
            methods.push(quote! {
                /// The row with this value, if any.
                pub fn #find(value: &#ty) -> Option<Self> { ::cosmictron::__find::<Self, #ty>(#cname, value) }
                /// Replace the row that has `row`'s value in this column (buffered).
                pub fn #update(row: Self) -> Self { ::cosmictron::__update::<Self>(#cname, row) }
                /// Delete the row with this value; false if there is none.
                pub fn #delete(value: &#ty) -> bool { ::cosmictron::__delete_by_key::<Self, #ty>(#cname, value) }
            });
        }
        if single_key || column.unique || column.index.is_some() {
            let filter = format_ident!("filter_by_{}", column.ident);
            let range = format_ident!("range_by_{}", column.ident);
            methods.push(quote! {
                /// Rows whose value in this column equals `value`.
                pub fn #filter(value: &#ty) -> Vec<Self> { ::cosmictron::__filter::<Self, #ty>(#cname, value) }
                /// Rows with `start <= value < stop` (`<= stop` if inclusive), in order; btree only.
                pub fn #range(start: Option<&#ty>, stop: Option<&#ty>, inclusive: bool) -> Vec<Self> {
                    ::cosmictron::__range::<Self, #ty>(#cname, start, stop, inclusive)
                }
            });
        }
    }
    quote! {
        #input

        impl ::cosmictron::Value for #ident {
            fn encode(&self, w: &mut ::cosmictron::Writer) {
                w.array(#width);
                #( ::cosmictron::Value::encode(&self.#idents, w); )*
            }
            fn decode(r: &mut ::cosmictron::Reader) -> ::std::result::Result<Self, ::cosmictron::Error> {
                if r.array()? != #width {
                    return Err(::cosmictron::Error::new("GuestDecodeError", concat!("a row of ", #name, " has the wrong width")));
                }
                Ok(#ident { #( #idents: ::cosmictron::Value::decode(r)?, )* })
            }
        }

        impl ::cosmictron::Table for #ident {
            const NAME: &'static str = #name;
        }

        impl #ident {
            /// Insert `row`; returns it as stored (auto_inc columns filled in).
            pub fn insert(row: Self) -> Self { ::cosmictron::__insert(row, #needs_result) }
            /// Insert `row` now, and hand back the host's error (a duplicate key) instead of failing.
            pub fn try_insert(row: Self) -> ::std::result::Result<Self, ::cosmictron::Error> { ::cosmictron::__try_insert(row) }
            /// Delete the row equal to `row`; false if no stored row equals it.
            pub fn delete(row: &Self) -> bool { ::cosmictron::__delete_row(row) }
            /// Every row.
            pub fn iter() -> Vec<Self> { ::cosmictron::__iter::<Self>() }
            /// How many rows.
            pub fn count() -> u64 { ::cosmictron::__count::<Self>() }
            #( #methods )*
        }

        #section
    }
    .into()
}

// -- #[reducer] ---------------------------------------------------------------------------

/// `#[reducer]`, `#[reducer(init)]`, `#[reducer(client_connected)]`,
/// `#[reducer(client_disconnected)]` on `fn name(ctx: &ReducerContext, args...) -> R`,
/// where R is `()`, a value, or `Result<(), E>` / `Result<T, E>` with `E: Display`.
#[proc_macro_attribute]
pub fn reducer(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as AttributeArgs);
    let func = parse_macro_input!(item as ItemFn);
    let mut kind = "reducer".to_string();
    for arg in args {
        match arg {
            NestedMeta::Meta(Meta::Path(p))
                if p.is_ident("init") || p.is_ident("client_connected") || p.is_ident("client_disconnected") =>
            {
                kind = p.get_ident().unwrap().to_string()
            }
            other => return err(other, "expected init, client_connected or client_disconnected"),
        }
    }
    let name = &func.sig.ident;
    let name_text = name.to_string();
    let export_name = format!("cosmictron_reducer_{}", name_text);
    let wrapper = format_ident!("__cosmictron_reducer_{}", name);
    let body_fn = format_ident!("__cosmictron_body_{}", name);
    let mut inputs = func.sig.inputs.iter();
    if inputs.next().is_none() {
        return err(&func.sig, "a reducer takes `ctx: &ReducerContext` first");
    }
    let mut idents = Vec::new();
    let mut types = Vec::new();
    let mut params = Vec::new();
    for (i, arg) in inputs.enumerate() {
        match arg {
            FnArg::Typed(pt) => {
                let pname = match &*pt.pat {
                    syn::Pat::Ident(p) => p.ident.to_string(),
                    other => return err(other, "reducer arguments are plain names"),
                };
                let mut keys = vec![("name".to_string(), s(&pname))];
                match type_keys(&pt.ty) {
                    Ok(k) => keys.extend(k),
                    Err(e) => return e.to_compile_error().into(),
                }
                params.push(Mp::Map(keys));
                idents.push(format_ident!("__arg{}", i));
                types.push((*pt.ty).clone());
            }
            FnArg::Receiver(r) => return err(r, "reducers cannot take self"),
        }
    }
    // The return: (), T, Result<(), E> or Result<T, E>.
    let (returns, conversion) = match &func.sig.output {
        ReturnType::Default => (Mp::Nil, quote! { { __value; ::cosmictron::__ok_nil() } }),
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(None) => (
                Mp::Nil,
                quote! { match __value { Ok(()) => ::cosmictron::__ok_nil(), Err(e) => ::cosmictron::__err(e) } },
            ),
            Some(Some(ok)) => match type_keys(ok) {
                Ok(keys) => (
                    Mp::Map(keys),
                    quote! { match __value { Ok(v) => ::cosmictron::__ok(&v), Err(e) => ::cosmictron::__err(e) } },
                ),
                Err(e) => return e.to_compile_error().into(),
            },
            None => {
                if is_unit(ty) {
                    (Mp::Nil, quote! { { __value; ::cosmictron::__ok_nil() } })
                } else {
                    match type_keys(ty) {
                        Ok(keys) => (Mp::Map(keys), quote! { ::cosmictron::__ok(&__value) }),
                        Err(e) => return e.to_compile_error().into(),
                    }
                }
            }
        },
    };
    let description = fragment(vec![(
        "reducers".into(),
        Mp::Arr(vec![Mp::Map(vec![
            ("name".into(), s(&name_text)),
            ("kind".into(), s(&kind)),
            ("params".into(), Mp::Arr(params)),
            ("returns".into(), returns),
        ])]),
    )]);
    let section = section(&format!("reducer_{}", name_text), description);
    let _ = Span::call_site();
    quote! {
        #func

        #[doc(hidden)]
        fn #body_fn(
            ctx: &::cosmictron::ReducerContext,
            args: &mut ::cosmictron::Reader,
        ) -> ::std::result::Result<::cosmictron::Outcome, ::cosmictron::Error> {
            #( let #idents: #types = <#types as ::cosmictron::Value>::decode(args)?; )*
            let __value = #name(ctx, #(#idents),*);
            Ok(#conversion)
        }

        #[doc(hidden)]
        #[export_name = #export_name]
        pub extern "C" fn #wrapper(frame: u32, length: u32) -> u64 {
            ::cosmictron::__run(frame, length, #body_fn)
        }

        #section
    }
    .into()
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// For `Result<T, E>`: Some(Some(T)), or Some(None) when T is `()`; None otherwise.
fn result_ok_type(ty: &Type) -> Option<Option<&Type>> {
    if let Type::Path(p) = ty {
        let last = p.path.segments.last()?;
        if last.ident == "Result" {
            if let PathArguments::AngleBracketed(a) = &last.arguments {
                if let Some(GenericArgument::Type(ok)) = a.args.first() {
                    return Some(if is_unit(ok) { None } else { Some(ok) });
                }
            }
        }
    }
    None
}

// -- #[ctype] -------------------------------------------------------------------------------

/// A nested type: a struct with named fields (a product) or an enum of unit variants,
/// usable as a column, argument or return type.
#[proc_macro_attribute]
pub fn ctype(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let parsed: syn::Item = parse_macro_input!(item as syn::Item);
    match parsed {
        syn::Item::Struct(item) => ctype_struct(item),
        syn::Item::Enum(item) => ctype_enum(item),
        other => err(other, "#[ctype] goes on a struct with named fields or a unit-only enum"),
    }
}

fn ctype_struct(input: ItemStruct) -> TokenStream {
    let ident = &input.ident;
    let fields = match &input.fields {
        Fields::Named(f) => f.named.iter().collect::<Vec<_>>(),
        _ => return err(&input, "#[ctype] needs named fields"),
    };
    let mut docs = Vec::new();
    for field in &fields {
        let mut keys = vec![("name".to_string(), s(&field.ident.as_ref().unwrap().to_string()))];
        match type_keys(&field.ty) {
            Ok(k) => keys.extend(k),
            Err(e) => return e.to_compile_error().into(),
        }
        docs.push(Mp::Map(keys));
    }
    let name = ident.to_string();
    let description = fragment(vec![(
        "types".into(),
        Mp::Arr(vec![Mp::Map(vec![
            ("type".into(), s("product")),
            ("product".into(), s(&name)),
            ("fields".into(), Mp::Arr(docs)),
        ])]),
    )]);
    let section = section(&format!("type_{}", name), description);
    let idents: Vec<_> = fields.iter().map(|f| f.ident.clone().unwrap()).collect();
    let width = idents.len();
    quote! {
        #input
        impl ::cosmictron::Value for #ident {
            fn encode(&self, w: &mut ::cosmictron::Writer) {
                w.array(#width);
                #( ::cosmictron::Value::encode(&self.#idents, w); )*
            }
            fn decode(r: &mut ::cosmictron::Reader) -> ::std::result::Result<Self, ::cosmictron::Error> {
                if r.array()? != #width {
                    return Err(::cosmictron::Error::new("GuestDecodeError", concat!(#name, " has the wrong width")));
                }
                Ok(#ident { #( #idents: ::cosmictron::Value::decode(r)?, )* })
            }
        }
        #section
    }
    .into()
}

fn ctype_enum(input: ItemEnum) -> TokenStream {
    let ident = &input.ident;
    let mut members = Vec::new();
    for variant in &input.variants {
        if !matches!(variant.fields, Fields::Unit) {
            return err(variant, "#[ctype] enums have unit variants only");
        }
        members.push(variant.ident.clone());
    }
    let names: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    let name = ident.to_string();
    let description = fragment(vec![(
        "types".into(),
        Mp::Arr(vec![Mp::Map(vec![
            ("type".into(), s("enum")),
            ("enum".into(), s(&name)),
            ("members".into(), Mp::Arr(names.iter().map(|n| s(n)).collect())),
        ])]),
    )]);
    let section = section(&format!("type_{}", name), description);
    quote! {
        #input
        impl ::cosmictron::Value for #ident {
            fn encode(&self, w: &mut ::cosmictron::Writer) {
                match self { #( #ident::#members => w.str(#names), )* }
            }
            fn decode(r: &mut ::cosmictron::Reader) -> ::std::result::Result<Self, ::cosmictron::Error> {
                match r.str()? {
                    #( #names => Ok(#ident::#members), )*
                    _ => Err(::cosmictron::Error::new("GuestDecodeError", concat!("not a member of ", #name))),
                }
            }
        }
        #section
    }
    .into()
}

//! `#[wasmhost::init]`: pre-initialisation work registered for the snapshot.

use super::*;

pub(crate) fn expand_init(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new(attr.span(), "`init` takes no arguments"));
    }
    let function: ItemFn = syn::parse2(item)?;
    let sig = &function.sig;
    if !sig.inputs.is_empty() || sig.asyncness.is_some() || !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.span(),
            "an init function takes no arguments: `fn name()` or `fn name() -> Result<(), E>`",
        ));
    }
    let ident = &sig.ident;
    let name = ident.to_string();
    let call = match &sig.output {
        ReturnType::Default => quote!({
            #ident();
            ::core::result::Result::Ok(())
        }),
        ReturnType::Type(..) => quote!(#ident().map_err(|e| e.to_string())),
    };
    Ok(quote! {
        #function

        ::wasmhost::__private::inventory::submit! {
            ::wasmhost::__private::InitHook {
                name: #name,
                run: || -> ::core::result::Result<(), ::std::string::String> { #call },
            }
        }
    })
}
